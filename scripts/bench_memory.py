"""Benchmark: server memory per web call, and no growth over a soak of repeated rounds of calls.

A `talkwire serve --providers fake` child process takes `--rounds` rounds of `--calls` concurrent synthetic
web calls (the load tester's callers and script). Its resident memory comes from its own `/metrics`
(`process_resident_memory_bytes`): idle before the first round, loaded (at the end of each round's steady
window, every call up) and idle again after each round.

- memory per call = (loaded RSS − idle RSS before that round) / calls, median over rounds;
- growth = idle RSS after the last round − idle RSS after the first round (the first round pays one-time
  costs: imports, codec tables, caches), also per call placed since then.

    .venv/bin/python scripts/bench_memory.py --calls 10 --rounds 6 --duration 30
    .venv/bin/python scripts/bench_memory.py --quick --json out.json     # smoke run (the tests run it)
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

import httpx  # noqa: E402

from loadtest.audio import DEFAULT_SCRIPT, SpeechCache  # noqa: E402
from loadtest.server import local_server, plan_cpus  # noqa: E402
from loadtest.server_metrics import scrape  # noqa: E402
from loadtest.stats import value  # noqa: E402
from loadtest.step import run_step  # noqa: E402


async def bench(calls: int, rounds: int, duration: float, workdir: Path, cpu: int | None) -> dict:
    speech = SpeechCache(workdir / "audio-cache")
    await speech.prepare(DEFAULT_SCRIPT)
    server_cpu, _ = plan_cpus(cpu)
    async with local_server("talkwire", workdir / "talkwire", cpu=server_cpu) as target:
        async with httpx.AsyncClient(timeout=15) as http:
            idle0 = value((await scrape(http, target.base_url))[1], "process_resident_memory_bytes") / 2**20
        idle, loaded, failed = [idle0], [], 0
        print(f"idle RSS {idle0:.1f} MB; {rounds} rounds of {calls} calls × {duration:.0f} s", file=sys.stderr,
              flush=True)
        for index in range(rounds):
            step = await run_step(target, calls, duration, speech, host_addresses=("127.0.0.1",))
            failed += step["summary"]["calls_failed"]
            loaded.append(step["server"]["rss_mb_loaded"])
            idle.append(step["server"]["rss_mb"])
            print(f"round {index + 1}/{rounds}: {step['summary']['calls_failed']} failed, RSS loaded "
                  f"{loaded[-1]} MB, idle after {idle[-1]} MB", file=sys.stderr, flush=True)
    per_call = [(load - before) / calls for load, before in zip(loaded, idle[:-1], strict=True)]
    growth = idle[-1] - idle[1]
    return {
        "calls": calls,
        "rounds": rounds,
        "duration": duration,
        "calls_failed": failed,
        "rss_idle_mb": [round(v, 1) for v in idle],
        "rss_loaded_mb": loaded,
        "mb_per_call": round(statistics.median(per_call), 2),
        "growth_mb_after_first_round": round(growth, 1),
        "growth_kb_per_call_after_first_round": round(growth * 1024 / max(1, calls * (rounds - 1)), 1)
        if rounds > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--cpu", type=int, default=1, help="core for the server (-1: no pinning)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 call, 2 rounds of 7 s")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds, args.duration = 1, 2, 7.0
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    result = asyncio.run(bench(args.calls, args.rounds, args.duration, workdir, None if args.cpu < 0 else args.cpu))
    print(f"{args.rounds} rounds × {args.calls} calls, {result['calls_failed']} failed")
    print(f"RSS idle per round: {result['rss_idle_mb']} MB; loaded: {result['rss_loaded_mb']} MB")
    print(f"memory per call: {result['mb_per_call']} MB; growth after the first round: "
          f"{result['growth_mb_after_first_round']} MB ({result['growth_kb_per_call_after_first_round']} kB per call)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
