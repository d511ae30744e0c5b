"""One step of load: N concurrent scripted callers for `duration` seconds, what they measured, what the server did.

A step holds when no call failed, at most 1% of outbound frames were over 20 ms late (p99 ≤ 20 ms) and none
over 40 ms (the thresholds are flags).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from loadtest.audio import DEFAULT_SCRIPT, SpeechCache, Turn, words
from loadtest.caller import CallResult, ScriptedCall
from loadtest.server import Target
from loadtest.server_metrics import (
    DEFAULT_THRESHOLDS,
    Scrape,
    Thresholds,
    active_calls,
    scrape,
    server_figures,
    settled,
)
from loadtest.stats import percentiles, word_errors
from loadtest.web_caller import WebCaller

GENERATOR_LAG_WARN_MS = 50.0
Progress = Callable[[dict[int, str], int], None]  # (state of each call by index, number of calls)


class LoopProbe:
    """This process's own event-loop lag: if the callers' loop falls behind, their figures are suspect."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.05
            await asyncio.sleep(0.05)
            self.lags.append((loop.time() - due) * 1000)


async def run_step(target: Target, calls: int, duration: float, speech: SpeechCache, *,
                   script: tuple[Turn, ...] = DEFAULT_SCRIPT, stagger: float = 0.1,
                   host_addresses: tuple[str, ...] = (), thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   max_turns: int | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """N concurrent calls for `duration` s (or until `max_turns` turns each); returns the per-call results and
    what the server measured."""
    echo = target.kind == "echo"
    states: dict[int, str] = {}
    changed = asyncio.Event()  # a caller's progress moved (or its task ended): the watcher looks again

    def tracker(index: int) -> Callable[[str], None]:
        def update(state: str) -> None:
            states[index] = state
            changed.set()
            if progress is not None:
                progress(states, calls)
        return update

    limits = httpx.Limits(max_connections=max(10, calls), max_keepalive_connections=max(10, calls))
    async with httpx.AsyncClient(timeout=30, limits=limits) as http, LoopProbe() as probe:
        loop = asyncio.get_running_loop()
        before = await scrape(http, target.base_url)
        callers: list[ScriptedCall]
        if target.leg in ("sip", "sip-in"):
            from loadtest.sip import SipCaller

            generator = target.generator
            assert generator is not None, "SIP calls go through the load generator"
            callers = [SipCaller(i, speech, script, generator=generator, inbound_to=target.inbound_to,
                                 max_turns=max_turns, on_progress=tracker(i)) for i in range(calls)]
            key = target.secret or target.key
        else:
            callers = [WebCaller(i, speech, script, host_addresses=host_addresses, echo=echo, max_turns=max_turns,
                                 on_progress=tracker(i)) for i in range(calls)]
            key = target.key

        async def one(caller: ScriptedCall) -> CallResult:
            await asyncio.sleep(caller.result.index * stagger)
            return await caller.run(http, target.base_url, target.agent_id, key, duration)

        tasks = [loop.create_task(one(c), name=f"caller-{c.result.index}") for c in callers]
        for task in tasks:
            task.add_done_callback(lambda _task: changed.set())
        window: list[Scrape] = []

        async def watch() -> None:
            while not all(c.result.setup_ms is not None or c.result.error or t.done()
                          for c, t in zip(callers, tasks, strict=True)):
                await changed.wait()
                changed.clear()
            if any(t.done() for t in tasks):
                return
            await asyncio.sleep(0.5)  # let the last call's set-up settle
            window.append(await scrape(http, target.base_url))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            window.append(await scrape(http, target.base_url))

        watcher = loop.create_task(watch())
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await watcher
        after = await settled(http, target.base_url, active_calls(before[1]))
    steady = len(window) == 2 and window[1][0] - window[0][0] >= 1.0
    start, end = (window[0], window[1]) if steady else (before, after)
    server = server_figures(start, end, before, after, thresholds)
    server["window"] = "steady" if steady else "whole step"
    generator_p99 = percentiles(probe.lags)["p99"]
    return {
        "concurrent_calls": calls,
        "calls": [r.as_dict() for r in results],
        "summary": summarize(results, echo=echo),
        "server": server,
        "generator_loop_lag_p99_ms": generator_p99,
        "generator_saturated": generator_p99 is not None and generator_p99 > GENERATOR_LAG_WARN_MS,
        "held": held(results, server, thresholds),
    }


def held(results: list[CallResult], server: dict[str, Any], thresholds: Thresholds) -> bool:
    if any(not r.ok for r in results) or not server["frames"]:
        return False
    return server["frames_over_p99_threshold"] <= 0.01 and server["frames_over_max_threshold"] == 0


def summarize(results: list[CallResult], *, echo: bool = False) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    scored = [r for r in results if r.wer is not None]  # calls whose transcripts could be read
    reference = [[w for t in r.spoken for w in words(t)] for r in scored]
    hypothesis = [[w for t in r.transcripts for w in words(t)] for r in scored]
    ref_words = sum(len(ref) for ref in reference)
    errors = sum(word_errors(ref, hyp) for ref, hyp in zip(reference, hypothesis, strict=True) if ref)
    counted = [r for r in results if r.packets_lost is not None]  # SIP callers have no loss count
    received = sum(r.packets_received or 0 for r in counted)
    lost = sum(r.packets_lost or 0 for r in counted)
    return {
        "calls_ok": len(ok),
        "calls_failed": len(results) - len(ok),
        "failures": sorted({r.error for r in results if r.error}),
        "setup_ms": percentiles(r.setup_ms for r in results),
        "first_audio_ms": percentiles(r.first_audio_ms for r in results),
        "response_latency_ms": percentiles(v for r in results for v in r.response_ms),
        "barge_in_latency_ms": percentiles(v for r in results for v in r.barge_in_ms),
        "wer": None if echo or not ref_words else round(errors / ref_words, 3),
        "turns": sum(r.turns for r in results),
        "audio_gaps": sum(r.gaps for r in results),
        "max_gap_ms": max((r.max_gap_ms for r in results if r.max_gap_ms is not None), default=None),
        "packet_loss": round(lost / (received + lost), 5) if received + lost else None,
    }


