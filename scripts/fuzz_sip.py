"""A longer fuzz run of the SIP stack than the test suite's (tests/test_sip_fuzz.py runs a few hundred examples per
target in seconds). The targets and what each must hold are in tests/sip_fuzz.py: the parser, SDP negotiation, the
RTP receive path (garbage, wrong sources, SSRC flapping) and the transaction layer (floods, retransmission storms,
no amplification). Seeds: the standing corpus, tests/sip_corpus.

    .venv/bin/python scripts/fuzz_sip.py                          # every target, 20,000 examples each
    .venv/bin/python scripts/fuzz_sip.py --examples 200000 --targets parser,sdp
    .venv/bin/python scripts/fuzz_sip.py --seed 7                 # reproducible

A failure prints hypothesis' smallest failing example and exits 1; add it to tests/sip_corpus when it is a new
defect, with the fix.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from sip_fuzz import AMPLIFICATION, TARGETS, Wire, feed_transactions, transaction_data  # noqa: E402

from signalling.sip.routing import Decision, InboundInvite  # noqa: E402
from signalling.sip.transaction import Timers  # noqa: E402
from signalling.sip.ua import SipUserAgent  # noqa: E402

ALL = [*sorted(TARGETS), "transactions"]


def run_target(name: str, examples: int, rng_seed: int | None) -> None:
    strategy, check = TARGETS[name]
    test = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))(given(strategy())(check))
    if rng_seed is not None:
        test = seed(rng_seed)(test)
    test()


async def run_transactions(examples: int, rng_seed: int | None) -> str:
    async def only_100(invite: InboundInvite) -> Decision:
        return Decision.accept() if invite.to_user == "100" else Decision.reject(404)

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=only_100,
                                  on_incoming=asyncio.Queue(), linger=0.1, timers=Timers(t1=0.02, t2=0.08, t4=0.1))
    wire = Wire()
    ua.endpoint.send_raw = wire  # type: ignore[method-assign]  # count instead of sending
    received = 0
    try:
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(transaction_data())
        def feed(sequence: list) -> None:
            nonlocal received
            received += feed_transactions(ua, sequence)
            assert ua.handler_errors == 0

        if rng_seed is not None:
            feed = seed(rng_seed)(feed)
        feed()
        await asyncio.sleep(2.0)  # every timer of what was fed runs out
        assert ua.handler_errors == 0, f"{ua.handler_errors} handler errors"
        assert wire.sent <= AMPLIFICATION * received, f"sent {wire.sent} bytes for {received} received"
        return f"fed {received} bytes, sent back {wire.sent} ({wire.sent / max(received, 1):.3f} per byte)"
    finally:
        await ua.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000, help="examples per target (default 20000)")
    parser.add_argument("--targets", default=",".join(ALL), help=f"comma-separated, of: {', '.join(ALL)}")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, for a reproducible run")
    args = parser.parse_args()
    failed = False
    for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
        if name not in ALL:
            parser.error(f"unknown target {name!r}")
        started = time.monotonic()
        try:
            if name == "transactions":
                note = asyncio.run(run_transactions(args.examples, args.seed))
            else:
                run_target(name, args.examples, args.seed)
                note = ""
        except Exception as exc:  # hypothesis has printed the falsifying example
            failed = True
            print(f"{name}: FAILED after {time.monotonic() - started:.1f} s: {exc!r}", flush=True)
            continue
        print(f"{name}: {args.examples} examples passed in {time.monotonic() - started:.1f} s {note}".rstrip(),
              flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
