"""`--ramp`: raise the number of calls step by step until a threshold breaks; the highest that held per core,
and the server's CPU per call from a line through the steps."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from loadtest.audio import SpeechCache
from loadtest.server import Target
from loadtest.server_metrics import Thresholds
from loadtest.step import Progress, run_step

if TYPE_CHECKING:
    from rich.console import Console


async def ramp(target: Target, args: argparse.Namespace, speech: SpeechCache, hosts: tuple[str, ...],
               thresholds: Thresholds, progress: Callable[[str], Progress], console: Console) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    calls = args.calls
    while calls <= args.ramp_max:
        for attempt in range(max(1, args.ramp_repeat)):  # best of R: noise from other work only makes it worse
            step = await run_step(target, calls, args.duration, speech, stagger=args.stagger, host_addresses=hosts,
                                  thresholds=thresholds, progress=progress(f"{target.kind}: {calls} calls"))
            step["attempt"] = attempt + 1
            if step["held"]:
                break
        steps.append(step)
        server = step["server"]
        console.print(f"{target.kind}: {calls} calls {'held' if step['held'] else 'broke'} — "
                      f"{step['summary']['calls_failed']} failed, server {server['cpu_cores']} cores, frame lag p99 "
                      f"{server['frame_lag_p99_ms']} ms, {server['frames_over_max_threshold']} frames over "
                      f"{thresholds.frame_lag_ms:g} ms")
        if not step["held"]:
            break
        best = step
        calls += args.ramp_step
    held_calls = best["concurrent_calls"] if best else 0
    if target.pinned_cpu is not None:
        per_core = float(held_calls)
    else:  # not pinned: the calls that held, per core the server actually used
        cores = best["server"]["cpu_cores"] if best else 0.0
        per_core = held_calls / max(1.0, cores)
    shown = best or steps[-1]
    summary = dict(shown["summary"])
    slope, idle = cpu_per_call(steps)
    summary.update(cpu_per_call_pct=None if slope is None else round(100 * slope, 2),
                   calls_per_core_by_cpu=round((1 - idle) / slope, 1) if slope else None)
    summary.update(calls_per_core=round(per_core, 2), highest_calls_held=held_calls,
                   broke_at=steps[-1]["concurrent_calls"] if not steps[-1]["held"] else None,
                   pinned=target.pinned_cpu is not None)
    return {"calls": shown["calls"], "summary": summary, "server": shown["server"],
            "generator_saturated": any(s["generator_saturated"] for s in steps),
            "steps": [strip(s) for s in steps]}


def cpu_per_call(steps: list[dict[str, Any]]) -> tuple[float | None, float]:
    """(server cores per added call, cores at zero calls) from the steps' CPU: a least-squares line through
    (calls, cores) when there are two call counts or more (the idle cost is then its intercept), else
    cores / calls with no idle cost. CPU time is far less disturbed by other work on the machine than
    latency is, so this is the steadier way to compare two servers."""
    points = [(s["concurrent_calls"], s["server"]["cpu_cores"]) for s in steps if s["server"]["frames"]]
    if not points:
        return None, 0.0
    n = np.array([p[0] for p in points], dtype=float)
    cores = np.array([p[1] for p in points], dtype=float)
    if len(set(n)) < 2:
        return float(cores.mean() / n.mean()), 0.0
    slope, intercept = np.polyfit(n, cores, 1)
    return (float(slope), max(0.0, float(intercept))) if slope > 0 else (None, 0.0)


def strip(step: dict[str, Any]) -> dict[str, Any]:
    """A step without its per-call list (kept only for the step the summary shows)."""
    return {k: v for k, v in step.items() if k != "calls"}

