"""Benchmark: web calls per core, Talkwire's full pipeline (FAKE providers) against a bare aiortc echo server.

Both servers run as child processes pinned to the same core and are ramped by the same synthetic aiortc
callers (`talkwire loadtest --ramp --baseline`): N calls, then N + step, ... until a step breaks a threshold
(p99 outbound frame lag over 20 ms, any frame over 40 ms late, or a failed call). The highest N that held is
the server's calls per core; the figure that matters is Talkwire's as a multiple of the echo's, since both
are measured in the same run on the same (noisy, shared) machine.

    .venv/bin/python scripts/bench_webrtc.py                         # calls 2, 4, 6, ... 20 s per step
    .venv/bin/python scripts/bench_webrtc.py --step 1 --max 30 --duration 30 --report docs/loadtest
    .venv/bin/python scripts/bench_webrtc.py --quick --json out.json   # smoke run (the tests run it)

The callers are aiortc peers too, on the other core(s): when their own event loop lags (reported as
`generator_saturated`), the ceiling measured is the load generator's, not the server's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from control_api.cli import build_parser  # noqa: E402
from control_api.loadtest import report  # noqa: E402
from control_api.loadtest.runner import loadtest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=2, help="calls in the first step")
    parser.add_argument("--step", type=int, default=2, help="calls added per step")
    parser.add_argument("--max", type=int, default=60, help="stop at this many calls")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per step")
    parser.add_argument("--cpu", type=int, default=1, help="core for the servers (-1: no pinning)")
    parser.add_argument("--data-dir", default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--report", default=None, help="write the PNG/HTML report here")
    parser.add_argument("--json", default=None, help="write the full result here")
    parser.add_argument("--quick", action="store_true", help="smoke run: one step of 1 call for 6 s on each server")
    args = parser.parse_args()
    if args.quick:
        args.start, args.step, args.max, args.duration = 1, 1, 1, 6.0
    argv = ["loadtest", "--ramp", "--baseline", "--providers", "fake", "--calls", str(args.start),
            "--ramp-step", str(args.step), "--ramp-max", str(args.max), "--duration", str(args.duration),
            "--cpu", str(args.cpu)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    options = build_parser().parse_args(argv)
    result = asyncio.run(loadtest(options, Console(stderr=True)))
    report.print_summary(Console(), result)
    if args.report:
        report.write_report(Path(args.report), result)
    summary = result["summary"]
    figures = {
        "talkwire_calls_per_core": summary["calls_per_core"],
        "echo_calls_per_core": result["baseline"]["calls_per_core"],
        "ratio_vs_echo": summary.get("calls_per_core_vs_echo"),
        "pinned": summary["pinned"],
        "generator_saturated": result["generator_saturated"],
        "talkwire_steps": [(s["concurrent_calls"], s["held"], s["server"]["cpu_cores"]) for s in result["steps"]],
        "echo_steps": [(s["concurrent_calls"], s["held"], s["server"]["cpu_cores"])
                       for s in result["baseline"]["steps"]],
    }
    print(f"web calls per core: talkwire {figures['talkwire_calls_per_core']}, bare aiortc echo "
          f"{figures['echo_calls_per_core']} → ratio {figures['ratio_vs_echo']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "result": result}, indent=1))


if __name__ == "__main__":
    main()
