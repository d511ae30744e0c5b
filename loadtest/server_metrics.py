"""What the server measured, read from its `GET /metrics` (Prometheus text), which works for a remote server too.

Its CPU time is `process_cpu_seconds_total`; a step compares two scrapes taken over the steady window (every
call up → the first call's end; the whole step when that window is too short).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from loadtest.stats import HistogramDelta, Samples, parse_metrics, value

FRAME_LAG = "talkwire_outbound_frame_lag_seconds"
STAGES = ("stt", "llm_first_token", "tts_first_audio", "response")


@dataclass(frozen=True)
class Thresholds:
    """A step holds when at most 1% of outbound frames were over `p99_lag_ms` late and none over `frame_lag_ms`."""

    p99_lag_ms: float = 20.0
    frame_lag_ms: float = 40.0


DEFAULT_THRESHOLDS = Thresholds()
Scrape = tuple[float, Samples]  # (loop time it was taken, the samples)


async def scrape(http: httpx.AsyncClient, base_url: str) -> Scrape:
    loop = asyncio.get_running_loop()
    response = await http.get(f"{base_url}/metrics")
    response.raise_for_status()
    return loop.time(), parse_metrics(response.text)


def active_calls(samples: Samples) -> float:
    return sum(v for (name, _labels), v in samples.items() if name == "talkwire_active_calls")


async def settled(http: httpx.AsyncClient, base_url: str, active_before: float,
                  timeout: float = 15.0) -> Scrape:
    """A scrape once the server has finished the step's calls (its active calls back to where they were)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        taken = await scrape(http, base_url)
        if active_calls(taken[1]) <= active_before or loop.time() > deadline:
            return taken
        await asyncio.sleep(0.1)


async def idle_cores(base_url: str, seconds: float = 5.0) -> float:
    """The server's CPU (in cores) with no calls, from two scrapes `seconds` apart."""
    async with httpx.AsyncClient(timeout=15) as http:
        t0, s0 = await scrape(http, base_url)
        await asyncio.sleep(seconds)
        t1, s1 = await scrape(http, base_url)
    return (value(s1, "process_cpu_seconds_total") - value(s0, "process_cpu_seconds_total")) / (t1 - t0)


def server_figures(start: Scrape, end: Scrape, before: Scrape, after: Scrape,
                   thresholds: Thresholds) -> dict[str, Any]:
    """The server's side of a step: CPU, memory and lag over the window `start`→`end`, and the pipeline stages,
    call outcomes and provider errors over the whole step `before`→`after`."""
    (t0, s0), (t1, s1) = start, end
    lag = HistogramDelta.between(s0, s1, FRAME_LAG)
    loop_lag = HistogramDelta.between(s0, s1, "talkwire_event_loop_lag_seconds")
    tick = HistogramDelta.between(s0, s1, "talkwire_clock_tick_lag_seconds")
    wall = max(t1 - t0, 1e-6)
    cpu = value(s1, "process_cpu_seconds_total") - value(s0, "process_cpu_seconds_total")
    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        hist = HistogramDelta.between(before[1], after[1], "talkwire_pipeline_stage_seconds", stage=stage)
        stages[stage] = {"count": int(hist.total), "p50_ms": ms(hist.quantile(0.5)), "p95_ms": ms(hist.quantile(0.95))}
    outcomes: dict[str, int] = {}
    for (name, labels), v in after[1].items():
        if name == "talkwire_calls_total":
            grown = v - before[1].get((name, labels), 0.0)
            if grown:
                d = dict(labels)
                outcomes[f"{d['leg']}/{d['status']}/{d['reason']}"] = int(grown)
    errors = {dict(labels)["stage"]: int(v - before[1].get((name, labels), 0.0))
              for (name, labels), v in after[1].items() if name == "talkwire_provider_errors_total"}
    return {
        "seconds": round(wall, 2),
        "cpu_cores": round(cpu / wall, 3),
        "rss_mb": round(value(after[1], "process_resident_memory_bytes") / 2**20, 1),  # once the calls ended
        "rss_mb_loaded": round(value(s1, "process_resident_memory_bytes") / 2**20, 1),  # at the window's end
        "frames": int(lag.total),
        "frame_lag_p50_ms": ms(lag.quantile(0.5)),
        "frame_lag_p99_ms": ms(lag.quantile(0.99)),
        "frames_over_p99_threshold": round(lag.fraction_above(thresholds.p99_lag_ms / 1000), 5) if lag.total else None,
        "frames_over_max_threshold": int(lag.count_above(thresholds.frame_lag_ms / 1000)) if lag.total else None,
        "clock_tick_lag_p99_ms": ms(tick.quantile(0.99)),
        "event_loop_lag_p99_ms": ms(loop_lag.quantile(0.99)),
        "stages": stages,
        "provider_errors": errors,
        "outcomes": outcomes,
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
