"""Steady load and `--ramp` against a Talkwire server (or the echo baseline), and the CLI command.

Without `--against`, the server under test is a child process (`talkwire serve --providers fake|local` on
a free port and a fresh data directory), pinned to one core when the machine has two or more, while this
process (the callers) runs on the other cores: the server's CPU is then one core, and the highest call
count that holds is its calls per core. Its CPU time is read from its own `GET /metrics`
(`process_cpu_seconds_total`), which works for a remote server too.

Each step runs N callers for `duration` seconds (started `stagger` apart), then compares two scrapes of
`/metrics` taken over the steady window (every call up → the first call's end; the whole step when that
window is too short). A step holds when no call failed, at most 1% of outbound frames were over 20 ms
late (p99 ≤ 20 ms) and none over 40 ms (the thresholds are flags).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from control_api.loadtest.audio import DEFAULT_SCRIPT, SpeechCache, Turn, words
from control_api.loadtest.caller import CallResult, ScriptedCall, WebCaller
from control_api.loadtest.stats import HistogramDelta, Samples, parse_metrics, percentiles, value, word_errors

ROOT = Path(__file__).resolve().parents[2]
FRAME_LAG = "talkwire_outbound_frame_lag_seconds"
STAGES = ("stt", "llm_first_token", "tts_first_audio", "response")
GENERATOR_LAG_WARN_MS = 50.0


@dataclass
class Target:
    base_url: str
    key: str
    agent_id: str
    kind: str  # "talkwire" | "echo"
    pinned_cpu: int | None = None
    pid: int | None = None
    leg: str = "web"  # "web": aiortc callers; "sip": the server dials the generator; "sip-in": the reverse
    secret: str | None = None  # a secret key (SIP calls need one)
    generator: Any = None  # the SipLoadGenerator for SIP calls
    sip_address: str | None = None  # "host:port" of the server's SIP user agent (its banner)
    inbound_to: str | None = None  # "number@host:port" the inbound SIP callers dial


@dataclass
class Thresholds:
    p99_lag_ms: float = 20.0
    frame_lag_ms: float = 40.0


# ---- the server under test ---------------------------------------------------------------------------

def plan_cpus(requested: int | None) -> tuple[int | None, set[int] | None]:
    """(core for the server, cores for this process), or (None, None) where pinning is not possible."""
    if requested is None or not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    server = requested if requested in cores else cores[-1]
    return server, set(cores) - {server}


@asynccontextmanager
async def local_server(kind: str, workdir: Path, *, providers: str = "fake", cpu: int | None = None,
                       env: dict[str, str] | None = None, startup_timeout: float = 180.0) -> AsyncIterator[Target]:
    """`talkwire serve` (or the echo baseline) as a child process on a free loopback port.

    The server gets a fresh data directory under `workdir` (its first start prints the secret key used to
    pick the agent), removed when it stops; its log stays in `workdir`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
    if kind == "echo":
        cmd = [sys.executable, "-m", "control_api.loadtest.echo", "--host", "127.0.0.1", "--port", "0"]
    else:
        cmd = [sys.executable, "-m", "control_api.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--providers", providers, "--data-dir", str(data), "--json", "--log-level", "warning"]
    extra = env or {}
    env = {**os.environ, "TALKWIRE_ICE_HOST_ADDRESSES": "127.0.0.1", "TALKWIRE_SIP_BIND": "127.0.0.1:0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("TALKWIRE_SECRET_KEY", "TALKWIRE_PUBLISHABLE_KEY", "TALKWIRE_DATABASE_URL", "TALKWIRE_PORT"):
        env.pop(name, None)  # a fresh server with its own keys and database
    env.update(extra)
    log = open(workdir / f"{kind}-server.log", "wb")
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
                                                stdin=asyncio.subprocess.DEVNULL, preexec_fn=preexec)
    drain: asyncio.Task | None = None
    try:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), startup_timeout)
            banner = json.loads(line)
        except (asyncio.TimeoutError, ValueError):
            raise RuntimeError(f"the {kind} server did not start; see {workdir / f'{kind}-server.log'}") from None
        drain = asyncio.get_running_loop().create_task(proc.stdout.read(), name="server-stdout")
        base = banner["url"].rstrip("/")
        agent = "echo" if kind == "echo" else await create_agent(base, banner["secret_key"])
        yield Target(base, banner["publishable_key"], agent, kind, cpu, proc.pid, secret=banner["secret_key"],
                     sip_address=banner.get("sip"))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly and ends the calls
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


LOAD_AGENT = {
    "name": "Load test agent",
    "welcome_message": "Hello! How can I help you today?",
    "agent_prompt": "You are a helpful voice assistant. Answer in one short sentence of plain spoken English.",
    "silence_alert_message": "Are you still there?",
}


async def create_agent(base_url: str, secret_key: str) -> str:
    """An agent on the server's default providers (no model/voice/transcription given: the catalog's defaults,
    i.e. FAKE with `--providers fake`), so the load measures what the mode promises. The seeded demo agent is
    not used: its stored choices name the local models whatever the mode."""
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.post(f"{base_url}/assistant", json=LOAD_AGENT, headers={"X-API-Key": secret_key})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"cannot create the load test agent: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["id"]


async def first_agent(base_url: str, key: str) -> str:
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.get(f"{base_url}/assistant", headers={"X-API-Key": key})
    if response.status_code != 200 or not response.json().get("agents"):
        raise RuntimeError(f"cannot pick an agent (GET /assistant: HTTP {response.status_code}); pass --agent ID")
    return response.json()["agents"][0]["id"]


async def scrape(http: httpx.AsyncClient, base_url: str) -> tuple[float, Samples]:
    loop = asyncio.get_running_loop()
    response = await http.get(f"{base_url}/metrics")
    response.raise_for_status()
    return loop.time(), parse_metrics(response.text)


def active_calls(samples: Samples) -> float:
    return sum(v for (name, _labels), v in samples.items() if name == "talkwire_active_calls")


async def settled(http: httpx.AsyncClient, base_url: str, active_before: float,
                  timeout: float = 15.0) -> tuple[float, Samples]:
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


# ---- one step of load ----------------------------------------------------------------------------------

class LoopProbe:
    """This process's own event-loop lag: if the callers' loop falls behind, their figures are suspect."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "LoopProbe":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
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
                   host_addresses: tuple[str, ...] = (), thresholds: Thresholds = Thresholds(),
                   max_turns: int | None = None, progress: Any = None) -> dict[str, Any]:
    """N concurrent calls for `duration` s (or until `max_turns` turns each); returns the per-call results and
    what the server measured."""
    echo = target.kind == "echo"
    states: dict[int, str] = {}

    def tracker(index: int):
        def update(state: str) -> None:
            states[index] = state
            if progress is not None:
                progress(states, calls)
        return update

    limits = httpx.Limits(max_connections=max(10, calls), max_keepalive_connections=max(10, calls))
    async with httpx.AsyncClient(timeout=30, limits=limits) as http, LoopProbe() as probe:
        loop = asyncio.get_running_loop()
        before = await scrape(http, target.base_url)
        if target.leg in ("sip", "sip-in"):
            from control_api.loadtest.sip import SipCaller

            callers = [SipCaller(i, speech, script, generator=target.generator, inbound_to=target.inbound_to,
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
        window: list[tuple[float, Samples]] = []

        async def watch() -> None:
            while not all(c.result.setup_ms is not None or c.result.error or t.done()
                          for c, t in zip(callers, tasks)):
                await asyncio.sleep(0.05)
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


def server_figures(start: tuple[float, Samples], end: tuple[float, Samples], before: tuple[float, Samples],
                   after: tuple[float, Samples], thresholds: Thresholds) -> dict[str, Any]:
    (t0, s0), (t1, s1) = start, end
    lag = HistogramDelta.between(s0, s1, FRAME_LAG)
    loop_lag = HistogramDelta.between(s0, s1, "talkwire_event_loop_lag_seconds")
    tick = HistogramDelta.between(s0, s1, "talkwire_clock_tick_lag_seconds")
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    wall = max(t1 - t0, 1e-6)
    cpu = value(s1, "process_cpu_seconds_total") - value(s0, "process_cpu_seconds_total")
    stages = {}
    for stage in STAGES:
        hist = HistogramDelta.between(before[1], after[1], "talkwire_pipeline_stage_seconds", stage=stage)
        stages[stage] = {"count": int(hist.total), "p50_ms": ms(hist.quantile(0.5)), "p95_ms": ms(hist.quantile(0.95))}
    outcomes = {}
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
    errors = sum(word_errors(ref, hyp) for ref, hyp in zip(reference, hypothesis) if ref)
    counted = [r for r in results if r.packets_lost is not None]  # SIP callers have no loss count
    received = sum(r.packets_received or 0 for r in counted)
    lost = sum(r.packets_lost for r in counted)
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


# ---- the command ---------------------------------------------------------------------------------------

def default_workdir() -> Path:
    """<TALKWIRE_DATA_DIR or ./data>/loadtest: the speech cache lives on between runs there."""
    from control_api.settings import Settings

    return Settings().data_dir / "loadtest"


async def loadtest(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    from control_api.loadtest import report

    workdir = Path(args.data_dir) if args.data_dir else default_workdir()
    speech = SpeechCache(workdir / "audio-cache")
    await speech.prepare(DEFAULT_SCRIPT)
    thresholds = Thresholds(args.max_p99_lag_ms, args.max_frame_lag_ms)
    server_cpu, own_cpus = plan_cpus(None if args.against or args.cpu < 0 else args.cpu)
    if own_cpus:
        os.sched_setaffinity(0, own_cpus)
    config = {"calls": args.calls, "duration": args.duration, "ramp": args.ramp, "providers": args.providers,
              "leg": args.leg,
              "against": args.against, "server_cpu": server_cpu, "stagger": args.stagger,
              "thresholds": {"p99_lag_ms": thresholds.p99_lag_ms, "frame_lag_ms": thresholds.frame_lag_ms}}
    result: dict[str, Any] = {"config": config}

    @asynccontextmanager
    async def target_of(kind: str) -> AsyncIterator[Target]:
        generator = None
        if args.leg in ("sip", "sip-in") and kind == "talkwire":
            from control_api.loadtest.sip import SipLoadGenerator
            from signalling.sip import parse_hostport

            generator = await SipLoadGenerator.start(parse_hostport(args.sip_bind))
            console.print(f"SIP load generator (the server's trunk): {generator.trunk_uri}")
        try:
            if args.against and kind == "talkwire":
                agent = args.agent or await first_agent(args.against.rstrip("/"), args.key)
                yield Target(args.against.rstrip("/"), args.key, agent, "talkwire", leg=args.leg, secret=args.key,
                             generator=generator)
                return
            env = {"TALKWIRE_SIP_TRUNK": generator.trunk_uri} if generator else None
            async with local_server(kind, workdir / kind, providers=args.providers, cpu=server_cpu,
                                    env=env) as target:
                if args.agent and kind == "talkwire":
                    target.agent_id = args.agent
                if kind == "talkwire":
                    target.leg, target.generator = args.leg, generator
                if args.leg == "sip-in" and kind == "talkwire":
                    from control_api.loadtest.sip import link_inbound_number

                    if not target.sip_address:
                        raise RuntimeError("the server runs no SIP user agent (TALKWIRE_SIP_BIND=off?)")
                    async with httpx.AsyncClient(timeout=15) as http:
                        number = await link_inbound_number(http, target.base_url, target.secret, target.agent_id,
                                                           generator)
                    target.inbound_to = f"{number}@{target.sip_address}"
                yield target
        finally:
            if generator is not None:
                await generator.close()

    hosts = () if args.against else ("127.0.0.1",)
    with report.live_progress(console) as progress:
        async with target_of("talkwire") as target:
            if not args.ramp:
                step = await run_step(target, args.calls, args.duration, speech, stagger=args.stagger,
                                      host_addresses=hosts, thresholds=thresholds,
                                      progress=progress(f"{args.calls} calls"))
                result.update(calls=step["calls"], summary=step["summary"], server=step["server"],
                              generator_saturated=step["generator_saturated"], steps=[strip(step)])
            else:
                result.update(await ramp(target, args, speech, hosts, thresholds, progress, console))
        if args.ramp and args.baseline and not args.against:
            async with target_of("echo") as echo:
                baseline = await ramp(echo, args, speech, hosts, thresholds, progress, console)
            result["baseline"] = {"kind": "aiortc echo", "steps": baseline["steps"],
                                  "calls_per_core": baseline["summary"]["calls_per_core"]}
            ours, floor = result["summary"]["calls_per_core"], baseline["summary"]["calls_per_core"]
            result["summary"]["calls_per_core_vs_echo"] = round(ours / floor, 3) if ours and floor else None
            result["baseline"]["cpu_per_call_pct"] = baseline["summary"]["cpu_per_call_pct"]
            ours, floor = result["summary"]["cpu_per_call_pct"], baseline["summary"]["cpu_per_call_pct"]
            result["summary"]["cpu_per_call_vs_echo"] = round(ours / floor, 3) if ours and floor else None
    return result


async def ramp(target: Target, args: argparse.Namespace, speech: SpeechCache, hosts: tuple[str, ...],
               thresholds: Thresholds, progress: Any, console: Any) -> dict[str, Any]:
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
    import numpy as np

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


def cmd_loadtest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from control_api.loadtest import report

    if args.against and not args.key:
        print("talkwire: error: --against needs --key (a publishable or secret key of that server)", file=sys.stderr)
        return 2
    if args.leg == "sip-in" and args.against:
        print("talkwire: error: --leg sip-in works with the local server only (it links a number to the agent "
              "and calls the server's SIP address)", file=sys.stderr)
        return 2
    if args.leg != "web" and args.baseline:
        print("talkwire: error: --baseline is the aiortc echo, for web calls (SIP's baseline is "
              "scripts/bench_sip.py)", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    try:
        result = asyncio.run(loadtest(args, console))
    except httpx.HTTPError as exc:
        print(f"talkwire: error: cannot reach the server: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:  # no agent, a server that did not start, a port taken: one line
        print(f"talkwire: error: {exc}", file=sys.stderr)
        return 1
    report.print_summary(Console(), result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.report:
        report.write_report(Path(args.report), result)
    return 0 if result["summary"]["calls_failed"] == 0 or args.ramp else 1


def add_parser(commands: Any, common: argparse.ArgumentParser | None = None) -> None:
    parser = commands.add_parser(
        "loadtest", help="load a server with synthetic web callers and report latencies and capacity",
        description="Synthetic web callers (aiortc, like the browser SDK) follow a script of turns "
                    "(speech, silence, noise, barge-in) against a Talkwire server. Without --against, a "
                    "server is started here on a free port (pinned to one core when possible).")
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (with --ramp: the first step)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds each call lasts")
    parser.add_argument("--ramp", action="store_true",
                        help="raise the number of calls step by step until a threshold breaks; "
                             "reports the highest that held (calls per core)")
    parser.add_argument("--ramp-step", type=int, default=2, help="calls added per ramp step")
    parser.add_argument("--ramp-max", type=int, default=200, help="stop the ramp at this many calls")
    parser.add_argument("--ramp-repeat", type=int, default=1,
                        help="tries per ramp step; a step holds if one of them does (on a shared machine)")
    parser.add_argument("--baseline", action="store_true",
                        help="with --ramp on a local server: ramp a bare aiortc echo server too, and report the ratio")
    parser.add_argument("--leg", choices=["web", "sip", "sip-in"], default="web",
                        help="web: aiortc callers like the browser SDK; sip: the server dials (type sip) a SIP "
                             "trunk this tool runs, which answers every call and follows the script; sip-in: "
                             "phone calls into a number linked to the agent (local server only)")
    parser.add_argument("--sip-bind", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="address of the SIP load generator (with --against, set the server's "
                             "TALKWIRE_SIP_TRUNK to it; default: a free port on 127.0.0.1)")
    parser.add_argument("--against", default=None, metavar="URL", help="base URL of a running server")
    parser.add_argument("--key", default=None,
                        help="API key for --against (Phase 1 and listing agents; a secret key for --leg sip)")
    parser.add_argument("--agent", default=None, metavar="ID", help="agent to call (default: the first one)")
    parser.add_argument("--providers", choices=["fake", "local"], default="fake",
                        help="providers of the local server (default: fake, instant)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--report", default=None, metavar="DIR", help="write PNG plots and an HTML page")
    parser.add_argument("--data-dir", default=None,
                        help="work folder: cached speech, server logs, the local server's data while it runs "
                             "(default: $TALKWIRE_DATA_DIR/loadtest or ./data/loadtest)")
    parser.add_argument("--cpu", type=int, default=1, help="core to pin the local server to (-1: do not pin)")
    parser.add_argument("--stagger", type=float, default=0.1, help="seconds between call starts")
    parser.add_argument("--max-p99-lag-ms", type=float, default=20.0, help="ramp threshold: p99 outbound frame lag")
    parser.add_argument("--max-frame-lag-ms", type=float, default=40.0,
                        help="ramp threshold: no outbound frame later than this")
    parser.set_defaults(func=cmd_loadtest)
