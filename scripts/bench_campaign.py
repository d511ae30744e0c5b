"""Benchmark: the campaign dialer keeping 100 calls in flight (a campaign of 500, `max_concurrent_calls` 100).

Two ways to place the calls, the same dialer and database steps in both:

- `--placer sip` (default): through Talkwire's SIP user agent to sipp on 127.0.0.1, which answers every call and
  hangs up after `--hold` seconds (RTP both ways is set up; no agent runs: the leg's audio is drained). The
  process's CPU here is the dialer plus the SIP stack and 100 calls' RTP.
- `--placer hold`: each call is a timer of `--hold` seconds (no SIP). The process's CPU is then the dialer's own:
  its ticks, claims, pacing, and recording each attempt.

Reported: dials per second achieved while ramping up against the cap (`--cps`, TALKWIRE_DIALER_MAX_CPS), calls in
flight (mean and max over the steady part), the process's CPU as a percentage of one core over the run, and
database statements per dial (every statement the database driver ran, divided by the dials). Target (issue 11):
100 calls in flight with under 5 % of a core for the dialer itself, on SQLite and on PostgreSQL.

    .venv/bin/python scripts/bench_campaign.py                        # SQLite, sipp
    .venv/bin/python scripts/bench_campaign.py --placer hold
    .venv/bin/python scripts/bench_campaign.py --database-url "$TALKWIRE_TEST_POSTGRES_URL"   # a fresh database is
                                                                      # made next to that one and dropped after
Prints a human summary and, with --json, one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from control_api.dialer.loop import Dialer  # noqa: E402
from control_api.dialer.placer import Attempt, AttemptResult, CallCreated  # noqa: E402
from control_api.dialer.sip_placer import CallEnd, SipPlacer  # noqa: E402
from control_api.storage import Database  # noqa: E402
from control_api.storage.models import Agent, Campaign, CampaignProspect, Client, Prospect  # noqa: E402
from media.end_reason import EndReason  # noqa: E402
from signalling.sip.leg import SipLeg  # noqa: E402
from signalling.sip.ua import SipUserAgent  # noqa: E402

ALL_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Answers at once, hangs up after sipp's -d milliseconds.
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="campaign bench callee">
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from" />
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact" />
    </action>
  </recv>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" />
  <pause />
  <send retrans="500">
    <![CDATA[
BYE [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:callee@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
To:[$remote_from]
[last_Call-ID:]
CSeq: 9 BYE
Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" />
</scenario>
"""


class HoldCalls:
    """Calls that are timers: answered at once, over after `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.live = 0
        self.placed: list[float] = []  # when each call started (monotonic)

    async def place(self, attempt: Attempt, call_created: CallCreated) -> AttemptResult:
        self.placed.append(time.monotonic())
        await call_created(str(uuid.uuid4()))
        self.live += 1
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.live -= 1
        return AttemptResult(True, EndReason.REMOTE_HANGUP)


class SipCalls:
    """`OutboundCalls` straight on the SIP user agent (no call records, no agent): what the dialer needs of the
    server's SIP dispatch."""

    def __init__(self, ua: SipUserAgent, trunk: str) -> None:
        self.ua = ua
        self.trunk = trunk
        self.legs: dict[str, SipLeg] = {}
        self.placed: list[float] = []  # when each INVITE went out (monotonic)

    @property
    def live(self) -> int:
        return len(self.legs)

    async def dial(self, *, client_id: str, agent_id: str, to_number: str, name: str | None = None,
                   from_number: str | None = None, ring_timeout: float | None = None,
                   prospect_id: str | None = None, campaign_id: str | None = None) -> str:
        leg = await self.ua.dial(to_number, self.trunk, from_number=from_number, ring_timeout=ring_timeout or 30)
        self.placed.append(time.monotonic())
        leg.consume(lambda frame: None)
        self.legs[leg.call_id] = leg
        return leg.call_id

    async def wait_ended(self, call_id: str) -> CallEnd:
        leg = self.legs[call_id]
        try:
            result = await leg.answered
            if not result.answered:
                return CallEnd(False, EndReason.parse(result.outcome) or EndReason.ERROR)
            return CallEnd(True, EndReason.parse(await leg.ended) or EndReason.REMOTE_HANGUP)
        finally:
            self.legs.pop(call_id, None)


async def seed(db: Database, prospects: int, cap: int) -> str:
    async with db.session() as session:
        client = Client(name="bench")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="bench agent")
        session.add(agent)
        await session.flush()
        campaign = Campaign(client_id=client.id, agent_id=agent.id, name="bench", status="active", timezone="UTC",
                            call_hours_start="00:00:00", call_hours_end="00:00:00", call_days=ALL_DAYS,
                            max_concurrent_calls=cap, call_timeout_seconds=30, use_managed_numbers=True)
        session.add(campaign)
        await session.flush()
        people = [Prospect(client_id=client.id, name=f"p{i}", phone=f"+1555{i:07d}", lead_source="campaign")
                  for i in range(prospects)]
        session.add_all(people)
        await session.flush()
        start = datetime(2026, 1, 1)
        session.add_all(CampaignProspect(client_id=client.id, campaign_id=campaign.id, prospect_id=p.id,
                                         created_at=start + timedelta(milliseconds=i)) for i, p in enumerate(people))
    return campaign.id


@asynccontextmanager
async def database(url: str | None) -> AsyncIterator[Database]:
    if url is None or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            db = await Database.open(url or f"sqlite+aiosqlite:///{folder}/bench.db")
            try:
                yield db
            finally:
                await db.close()
        return
    import asyncpg

    base = make_url(url)
    name = "bench_" + secrets.token_hex(4)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=base.host, port=base.port, user=base.username, password=base.password,
                                     database=base.database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        db = await Database.open(base.set(database=name).render_as_string(hide_password=False))
        try:
            yield db
        finally:
            await db.close()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with database(args.database_url) as db:
        campaign_id = await seed(db, args.prospects, args.max_concurrent)
        statements = [0]
        event.listen(db.engine.sync_engine, "before_cursor_execute",
                     lambda *_: statements.__setitem__(0, statements[0] + 1))
        sipp = None
        ua = None
        workdir = Path(tempfile.mkdtemp(prefix="bench_campaign_"))
        if args.placer == "sip":
            sipp_bin = shutil.which("sipp")
            if sipp_bin is None:
                raise SystemExit("sipp is not installed (use --placer hold)")
            (workdir / "callee.xml").write_text(SCENARIO)
            port = 45000 + secrets.randbelow(10000)
            sipp = await asyncio.create_subprocess_exec(
                sipp_bin, "-sf", "callee.xml", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port),
                "-mp", str(port + 2), "-d", str(int(args.hold * 1000)), "-nostdin", "-max_socket", "2000",
                cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.5)
            ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999))
            calls: HoldCalls | SipCalls = SipCalls(ua, f"sip:127.0.0.1:{port};transport=udp")
            placer: Any = SipPlacer(calls)
        else:
            calls = placer = HoldCalls(args.hold)
        dialer = Dialer(db, placer, dialer_id="bench", max_cps=args.cps)
        in_flight: list[int] = []
        before_statements = statements[0]
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        dialer.start()
        polls = 0
        status = None
        try:
            while True:
                await asyncio.sleep(0.1)
                in_flight.append(calls.live)
                now = time.monotonic()
                if len(in_flight) % 5:
                    continue
                polls += 1
                async with db.session() as session:
                    status = await session.scalar(Campaign.__table__.select().with_only_columns(Campaign.status)
                                                  .where(Campaign.id == campaign_id))
                if status == "completed" or now - wall0 > args.limit:
                    break
        finally:
            await dialer.stop(grace=args.hold + 5)
        wall = time.monotonic() - wall0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        # The status polls above are the benchmark's own statements: one per 500 ms.
        dials = args.prospects
        ran = statements[0] - before_statements - polls
        if ua is not None:
            await ua.close()
        if sipp is not None:
            sipp.kill()
            await sipp.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        async with db.session() as session:
            done = await session.scalar(Campaign.__table__.select().with_only_columns(Campaign.successful_calls)
                                        .where(Campaign.id == campaign_id))
        steady = [n for n in in_flight if n >= args.max_concurrent * 0.5] or in_flight
        ramp = min(args.max_concurrent, dials)
        placed = sorted(calls.placed)
        ramp_seconds = (placed[ramp - 1] - placed[0]) if len(placed) >= ramp else None
        return {
            "database": db.dialect, "placer": args.placer, "prospects": dials, "answered": done,
            "max_concurrent_calls": args.max_concurrent, "cps_cap": args.cps, "hold_seconds": args.hold,
            "wall_seconds": round(wall, 2), "completed": status == "completed",
            "ramp_dials_per_second": round((ramp - 1) / ramp_seconds, 2) if ramp_seconds else None,
            "overall_dials_per_second": round(dials / wall, 2),
            "in_flight_mean": round(sum(steady) / len(steady), 1), "in_flight_max": max(in_flight),
            "cpu_percent_of_a_core": round(100 * cpu / wall, 2),
            "statements_per_dial": round(ran / dials, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--placer", choices=["sip", "hold"], default="sip")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--prospects", type=int, default=500)
    parser.add_argument("--max-concurrent", type=int, default=100)
    parser.add_argument("--cps", type=float, default=50.0, help="the dialer's calls-per-second cap")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each answered call lasts")
    parser.add_argument("--limit", type=float, default=120.0, help="stop after this many seconds whatever")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print where the time went (cProfile)")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, run(args))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    else:
        result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
