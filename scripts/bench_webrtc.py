"""Benchmark: web calls per core, Talkwire's full pipeline (FAKE providers) against a bare aiortc echo server.

Both servers run as child processes pinned to the same core (the callers run on the other cores) and take
the same synthetic aiortc callers (loadtest/). Two measures, each as Talkwire / echo:

- CPU sweep: each server's idle CPU first, then for each N in --sweep, N calls on Talkwire and N calls on
  the echo, interleaved so both see the same background noise. At each N, the ratio of the two servers'
  CPU above idle; the headline is the median of those ratios (`cpu_per_call_vs_echo`; its inverse is
  `calls_per_core_vs_echo`). Each server's CPU per call = (cores − idle) / N, median over the steps, and
  calls per core by CPU = (1 − idle) / that. CPU time is far less disturbed by other work on a shared
  machine than latency is.
- Threshold ramp (--ramp): N, N + step, ... until a step breaks the load tester's thresholds (p99 outbound
  frame lag over 20 ms, any frame over 40 ms late, or a failed call), best of --repeat tries per step. The
  highest N that held is the calls per core. On a machine shared with other work, outside stalls break these
  latency thresholds long before the CPU is used up, which is why the CPU sweep is the default.

    .venv/bin/python scripts/bench_webrtc.py                               # sweep 2,4,6,8,10, 20 s each
    .venv/bin/python scripts/bench_webrtc.py --sweep 4,8,12 --ramp --json out.json
    .venv/bin/python scripts/bench_webrtc.py --quick --json out.json       # smoke run (the tests run it)

The callers are aiortc peers too: when their own event loop lags (`generator_saturated`), a ceiling is
the load generator's rather than the server's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from control_api.cli import build_parser  # noqa: E402
from loadtest.audio import DEFAULT_SCRIPT, SpeechCache  # noqa: E402
from loadtest.ramp import ramp, strip  # noqa: E402
from loadtest.server import local_server, plan_cpus  # noqa: E402
from loadtest.server_metrics import Thresholds, idle_cores  # noqa: E402
from loadtest.step import run_step  # noqa: E402

HOSTS = ("127.0.0.1",)


def cost(steps: list[dict], idle: float) -> dict:
    """CPU per call = (server cores − idle cores) / calls, per step and its median over the steps."""
    per_call = [(s["server"]["cpu_cores"] - idle) / s["concurrent_calls"] for s in steps]
    median = statistics.median(per_call) if per_call else None
    return {"idle_cores": round(idle, 4), "cpu_per_call_pct": round(100 * median, 2) if median else None,
            "calls_per_core_by_cpu": round((1 - idle) / median, 1) if median and median > 0 else None,
            "per_call_pct_by_step": [round(100 * v, 2) for v in per_call]}


async def bench(args: argparse.Namespace, console: Console) -> dict:
    workdir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-webrtc-"))
    speech = SpeechCache(workdir / "audio-cache")
    await speech.prepare(DEFAULT_SCRIPT)
    server_cpu, own = plan_cpus(None if args.cpu < 0 else args.cpu)
    if own:
        import os

        os.sched_setaffinity(0, own)
    sweep = [int(n) for n in args.sweep.split(",")]
    result: dict = {"config": {"sweep": sweep, "duration": args.duration, "server_cpu": server_cpu,
                               "ramp": args.ramp, "repeat": args.repeat}}
    async with local_server("talkwire", workdir / "talkwire", cpu=server_cpu) as talkwire, \
            local_server("echo", workdir / "echo", cpu=server_cpu) as echo:
        await asyncio.sleep(2)  # both servers settle (start-up work) before idle is measured
        idle = {"talkwire": await idle_cores(talkwire.base_url, args.idle_seconds),
                "echo": await idle_cores(echo.base_url, args.idle_seconds)}
        steps: dict[str, list[dict]] = {"talkwire": [], "echo": []}
        for n in sweep:
            for target in (talkwire, echo):
                step = await run_step(target, n, args.duration, speech, host_addresses=HOSTS)
                steps[target.kind].append(step)
                server = step["server"]
                console.print(f"{target.kind}: {n} calls, {step['summary']['calls_failed']} failed, server "
                              f"{server['cpu_cores']} cores, frame lag p99 {server['frame_lag_p99_ms']} ms")
        result["sweep"] = {kind: {**cost(run, idle[kind]), "steps": [strip(s) for s in run]}
                           for kind, run in steps.items()}
        if args.ramp:
            options = build_parser().parse_args(
                ["loadtest", "--ramp", "--calls", str(sweep[0]), "--ramp-step", str(args.step), "--ramp-max",
                 str(args.max), "--duration", str(args.duration), "--ramp-repeat", str(args.repeat)])
            progress = lambda label: None  # noqa: E731  (the per-step lines are printed by ramp())
            result["ramp"] = {}
            for target in (talkwire, echo):
                run = await ramp(target, options, speech, HOSTS, Thresholds(), progress, console)
                result["ramp"][target.kind] = {"calls_per_core": run["summary"]["calls_per_core"],
                                               "generator_saturated": run["generator_saturated"],
                                               "steps": run["steps"]}
    ours, floor = result["sweep"]["talkwire"], result["sweep"]["echo"]
    by_n = []
    for t, e in zip(steps["talkwire"], steps["echo"], strict=False):
        above = (t["server"]["cpu_cores"] - idle["talkwire"], e["server"]["cpu_cores"] - idle["echo"])
        by_n.append({"calls": t["concurrent_calls"], "talkwire_cores": t["server"]["cpu_cores"],
                     "echo_cores": e["server"]["cpu_cores"],
                     "ratio": round(above[0] / above[1], 3) if above[1] > 0 else None})
    ratios = [row["ratio"] for row in by_n if row["ratio"] is not None]
    result["figures"] = {
        "talkwire_cpu_per_call_pct": ours["cpu_per_call_pct"],
        "echo_cpu_per_call_pct": floor["cpu_per_call_pct"],
        "cpu_per_call_vs_echo": round(statistics.median(ratios), 3) if ratios else None,
        "by_calls": by_n,
        "talkwire_calls_per_core_by_cpu": ours["calls_per_core_by_cpu"],
        "echo_calls_per_core_by_cpu": floor["calls_per_core_by_cpu"],
        "calls_per_core_vs_echo": round(1 / statistics.median(ratios), 3) if ratios else None,
        "pinned": server_cpu is not None,
        "generator_saturated": any(s["generator_saturated"] for run in steps.values() for s in run),
        "calls_failed": sum(s["summary"]["calls_failed"] for run in steps.values() for s in run),
    }
    if args.ramp:
        t, e = result["ramp"]["talkwire"]["calls_per_core"], result["ramp"]["echo"]["calls_per_core"]
        result["figures"].update(talkwire_calls_per_core_by_ramp=t, echo_calls_per_core_by_ramp=e,
                                 ramp_vs_echo=round(t / e, 3) if t and e else None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="2,4,6,8,10", help="call counts of the CPU sweep")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per step")
    parser.add_argument("--ramp", action="store_true", help="also ramp both servers to their latency thresholds")
    parser.add_argument("--step", type=int, default=2, help="ramp: calls added per step")
    parser.add_argument("--max", type=int, default=60, help="ramp: stop at this many calls")
    parser.add_argument("--repeat", type=int, default=2, help="ramp: tries per step (best of)")
    parser.add_argument("--cpu", type=int, default=1, help="core for the servers (-1: no pinning)")
    parser.add_argument("--data-dir", default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--json", default=None, help="write the full result here")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long idle CPU is measured")
    parser.add_argument("--quick", action="store_true", help="smoke run: one 5 s step of 1 call on each server")
    args = parser.parse_args()
    if args.quick:
        args.sweep, args.duration, args.ramp, args.idle_seconds = "1", 5.0, False, 2.0
    console = Console(stderr=True)
    result = asyncio.run(bench(args, console))
    f = result["figures"]
    table = Table(title="server CPU (cores) by concurrent web calls: Talkwire (FAKE providers) vs bare aiortc echo")
    for col in ("calls", "talkwire", "echo", "ratio above idle"):
        table.add_column(col, justify="right")
    for row in f["by_calls"]:
        table.add_row(str(row["calls"]), str(row["talkwire_cores"]), str(row["echo_cores"]), str(row["ratio"]))
    Console().print(table)
    print(f"CPU per call: talkwire {f['talkwire_cpu_per_call_pct']}% of a core "
          f"(→ {f['talkwire_calls_per_core_by_cpu']} calls per core), echo {f['echo_cpu_per_call_pct']}% "
          f"(→ {f['echo_calls_per_core_by_cpu']})")
    print(f"Talkwire costs {f['cpu_per_call_vs_echo']}× the echo per call (median over N); calls per core "
          f"{f['calls_per_core_vs_echo']}× the echo's (pinned: {f['pinned']}, failed calls: {f['calls_failed']}, "
          f"generator saturated: {f['generator_saturated']})")
    if args.ramp:
        print(f"threshold ramp: talkwire {f['talkwire_calls_per_core_by_ramp']}, "
              f"echo {f['echo_calls_per_core_by_ramp']} "
              f"→ {f['ramp_vs_echo']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
