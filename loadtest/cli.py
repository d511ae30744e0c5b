"""`talkwire loadtest`: the command line, the run it asks for, and its output.

The server's `talkwire loadtest` subcommand hands its arguments over to `main` here: the load tester is a client
of the server (it starts one as a child process or is given a URL) and ships in the `loadtest` extra, whose
display and plotting libraries the server itself does not need.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from loadtest.audio import DEFAULT_SCRIPT, SpeechCache
from loadtest.ramp import ramp, strip
from loadtest.server import Target, first_agent, local_server, plan_cpus
from loadtest.server_metrics import Thresholds
from loadtest.step import run_step

if TYPE_CHECKING:
    from rich.console import Console

    from loadtest.sip import SipLoadGenerator

EXTRA = ("rich", "matplotlib")  # the `loadtest` extra: the live progress and summary table, the PNG report
DESCRIPTION = ("Synthetic web callers (aiortc, like the browser SDK) follow a script of turns "
               "(speech, silence, noise, barge-in) against a Talkwire server. Without --against, a "
               "server is started here on a free port (pinned to one core when possible).")


def default_workdir() -> Path:
    """<TALKWIRE_DATA_DIR or ./data>/loadtest (the server's own data directory setting): the speech cache lives on
    between runs there."""
    return Path(os.environ.get("TALKWIRE_DATA_DIR", "./data")) / "loadtest"


async def loadtest(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from loadtest import report

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
        generator: SipLoadGenerator | None = None
        if args.leg in ("sip", "sip-in") and kind == "talkwire":
            from loadtest.sip import SipLoadGenerator
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
                    from loadtest.sip import link_inbound_number

                    if not target.sip_address:
                        raise RuntimeError("the server runs no SIP user agent (TALKWIRE_SIP_BIND=off?)")
                    assert target.secret is not None and generator is not None  # a local server, a SIP leg
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


def cmd_loadtest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from loadtest import report

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkwire loadtest", description=DESCRIPTION)
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
    return parser


def missing_extra() -> list[str]:
    return [name for name in EXTRA if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_extra()
    if missing:
        print(f"talkwire: error: the load tester needs {', '.join(missing)}: pip install 'talkwire[loadtest]'",
              file=sys.stderr)
        return 1
    return cmd_loadtest(args)


if __name__ == "__main__":
    sys.exit(main())
