"""Benchmark (not a test): calls per core of a deployment of 1, 2, 4 … members, and what each call set-up costs in
Redis and PostgreSQL round trips.

For each member count N: N `talkwire serve` members (FAKE providers, one Redis, one PostgreSQL), member I pinned
to core I-1 (sched_setaffinity); this process (the callers: aiortc peers) and sipp run on the cores left, or
share the last core when none is left (the report says so). Then, per kind:

- web: `--per-member` web calls per member, all created through member 1 (placement spreads them), each offer
  posted to its worker_url and connected; held `--hold` s;
- sip: as many outbound phone calls, created through member 1 and dialed by the member each was placed on, to
  sipp (tests/sipp/uas_bench.xml: answers, streams RTP until our BYE); held `--hold` s.

Reported per N and kind: the members' CPU time over the hold (from /proc) per call, hence calls per core (one
core / CPU share of a call), against N = 1 (the target: within 10 %); and per call set-up the Redis commands
(INFO stats) over the set-up, and the PostgreSQL transactions (pg_stat_database) over the set-up and the call's
first 10 s (PostgreSQL publishes a backend's counts only within 10 s: the welcome turn's timeline writes are in
it), each less what the idle deployment does in the same time (heartbeats, sweeps, the dialer's ticks).

    eval "$(scripts/start_postgres.sh)"; eval "$(scripts/start_redis.sh)"
    .venv/bin/python scripts/bench_cluster.py --members 1,2 --per-member 4 --hold 10

Needs TALKWIRE_TEST_REDIS_URL and TALKWIRE_TEST_POSTGRES_URL (or --redis-url / --database-url). Prints a table and,
with --json, one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtest.webrtc_peer import WebRtcPeer  # noqa: E402

SCENARIO = ROOT / "tests" / "sipp" / "uas_bench.xml"
REDIS_DB = 10
FAKE_STACK = {"model": {"provider": "FAKE", "model": "echo"},
              "transcription": {"provider": "FAKE", "model": "scripted"},
              "voice": {"provider": "FAKE", "name": "tone"}}
TICKS = os.sysconf("SC_CLK_TCK")
PG_STATS_DELAY = 11.0  # seconds: a PostgreSQL backend reports its transaction counts within 10 s


@dataclass
class Member:
    index: int
    proc: subprocess.Popen[bytes]
    base_url: str = ""

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_member(index: int, core: int | None, workdir: Path, env: dict[str, str]) -> Member:
    data = workdir / f"m{index}"
    data.mkdir(parents=True, exist_ok=True)
    rtp = 40000 + index * 1000
    member_env = {**env, "TALKWIRE_MEMBER_ID": f"m{index}", "TALKWIRE_DATA_DIR": str(data),
                  "TALKWIRE_SIP_BIND": "127.0.0.1:0", "TALKWIRE_RTP_PORT_MIN": str(rtp),
                  "TALKWIRE_RTP_PORT_MAX": str(rtp + 998)}

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    proc = subprocess.Popen([sys.executable, "-m", "control_api.cli", "serve", "--json", "--host", "127.0.0.1",
                             "--port", "0", "--providers", "fake", "--log-level", "warning"],
                            env=member_env, stdout=subprocess.PIPE, stderr=(workdir / f"m{index}.log").open("wb"),
                            cwd=ROOT, preexec_fn=pin)
    return Member(index, proc)


async def started(member: Member) -> None:
    assert member.proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(member.proc.stdout.readline), 120)
    if not line:
        raise RuntimeError(f"member {member.index} did not start")
    member.base_url = str(json.loads(line)["url"]).rstrip("/")


class Counters:
    """Redis commands and PostgreSQL transactions so far."""

    def __init__(self, redis: Redis, database_url: str) -> None:
        self.redis = redis
        self.url = make_url(database_url)

    async def read(self) -> tuple[int, int]:
        info = await self.redis.info("stats")
        conn = await asyncpg.connect(host=self.url.host, port=self.url.port, user=self.url.username,
                                     password=self.url.password, database=self.url.database)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            xacts = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                        "WHERE datname = current_database()")
        finally:
            await conn.close()
        return int(info["total_commands_processed"]), int(xacts) - 3  # this read's own transactions

    async def over(self, seconds: float) -> tuple[float, float]:
        """Per second, with nothing but the deployment's own upkeep."""
        r0, p0 = await self.read()
        await asyncio.sleep(seconds)
        r1, p1 = await self.read()
        return (r1 - r0) / seconds, (p1 - p0) / seconds


async def measure(members: list[Member], counters: Counters, idle: tuple[float, float], calls: int, hold: float,
                  set_up: Callable[[], Awaitable[Any]], tear_down: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    r0, p0 = await counters.read()
    began = time.monotonic()
    await set_up()
    took = time.monotonic() - began
    r1, _ = await counters.read()
    await asyncio.sleep(PG_STATS_DELAY)  # PostgreSQL publishes a backend's counts within 10 s
    _, p1 = await counters.read()
    pg_window = time.monotonic() - began
    cpu0, t0 = sum(m.cpu_seconds() for m in members), time.monotonic()
    await asyncio.sleep(hold)
    cpu = sum(m.cpu_seconds() for m in members) - cpu0
    wall = time.monotonic() - t0
    await tear_down()
    share = cpu / wall / calls  # of one core, per call
    return {"calls": calls, "cpu_per_call_pct": round(100 * share, 2),
            "calls_per_core": round(1 / share, 1) if share > 0 else None,
            "setup_s": round(took, 2),
            "redis_commands_per_setup": round(((r1 - r0) - idle[0] * took) / calls, 1),
            "pg_transactions_per_call_first_10s": round(((p1 - p0) - idle[1] * pg_window) / calls, 1)}


async def web_round(members: list[Member], counters: Counters, idle: tuple[float, float], keys: tuple[str, str],
                    agent_id: str, per_member: int, hold: float) -> dict[str, Any]:
    peers = [WebRtcPeer(host_addresses=["127.0.0.1"]) for _ in range(per_member * len(members))]

    async def set_up() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            for peer in peers:
                created = await peer.create_call(http, members[0].base_url, agent_id, keys[1])
                await peer.post_offer(http, created["worker_url"])
        await asyncio.gather(*(peer.wait_connected(30) for peer in peers))

    async def tear_down() -> None:
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)

    return await measure(members, counters, idle, len(peers), hold, set_up, tear_down)


async def sip_round(members: list[Member], counters: Counters, idle: tuple[float, float], keys: tuple[str, str],
                    agent_id: str, per_member: int, hold: float) -> dict[str, Any]:
    calls = per_member * len(members)
    call_ids: list[str] = []

    async def live(http: httpx.AsyncClient) -> int:
        found = 0
        for call_id in call_ids:
            record = (await http.get(f"{members[0].base_url}/calls/{call_id}")).json()
            found += record.get("answered_at") is not None
        return found

    async def set_up() -> None:
        async with httpx.AsyncClient(timeout=30, headers={"X-API-Key": keys[0]}) as http:
            for _ in range(calls):
                response = await http.post(f"{members[0].base_url}/calls/create", json={
                    "agent_id": agent_id, "type": "sip", "sip_data": {"to": "+15550002222"}})
                response.raise_for_status()
                call_ids.append(response.json()["call_id"])
            while await live(http) < calls:  # noqa: ASYNC110 (polling the API is the point)
                await asyncio.sleep(0.2)

    async def tear_down() -> None:
        async with httpx.AsyncClient(timeout=30, headers={"X-API-Key": keys[0]}) as http:
            for call_id in call_ids:
                await http.post(f"{members[0].base_url}/calls/{call_id}/end")

    return await measure(members, counters, idle, calls, hold, set_up, tear_down)


async def fresh_database(admin_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    url = make_url(admin_url)
    name = "twbench_" + secrets.token_hex(4)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                     database=url.database)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False), lambda: admin(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_deployment(count: int, args: argparse.Namespace, cores: list[int]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench_cluster_{count}_"))
    database_url, drop = await fresh_database(args.database_url)
    redis_url = args.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    (workdir / "speech.ulaw").write_bytes(b"\xff" * 8000)
    sipp_port = 15060 + count
    sipp = await asyncio.create_subprocess_exec(
        shutil.which("sipp") or "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-p", str(sipp_port), "-mp", str(26000 + 10 * count), "-nostdin", "-max_socket", "2048",
        cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = ("sk_live_bench" + secrets.token_urlsafe(16), "pk_live_bench" + secrets.token_urlsafe(16))
    env = {**os.environ, "TALKWIRE_DATABASE_URL": database_url, "TALKWIRE_REDIS_URL": redis_url,
           "TALKWIRE_SECRET_KEY": keys[0], "TALKWIRE_PUBLISHABLE_KEY": keys[1], "TALKWIRE_MAX_CALLS": "0",
           "TALKWIRE_SIP_TRUNK": f"sip:127.0.0.1:{sipp_port};transport=udp", "TALKWIRE_CALLS_PER_MINUTE_PER_KEY": "0",
           "TALKWIRE_CALLS_PER_MINUTE_PER_IP": "0", "TALKWIRE_OFFERS_PER_MINUTE_PER_IP": "0"}
    member_cores = [cores[i % len(cores)] for i in range(count)]
    members: list[Member] = []
    try:
        members.append(start_member(1, member_cores[0], workdir, env))
        await started(members[0])  # it migrates the database
        members += [start_member(i + 1, member_cores[i], workdir, env) for i in range(1, count)]
        await asyncio.gather(*(started(m) for m in members[1:]))
        async with httpx.AsyncClient(timeout=30, headers={"X-API-Key": keys[0]}) as http:
            agent = (await http.post(f"{members[0].base_url}/assistant", json={
                "name": "Bench", "welcome_message": "Hello.", "agent_prompt": "You talk.", **FAKE_STACK})).json()
        counters = Counters(redis, database_url)
        idle = await counters.over(PG_STATS_DELAY + 1)
        result: dict[str, Any] = {"members": count, "cores": member_cores,
                                  "idle_redis_commands_per_s": round(idle[0], 1),
                                  "idle_pg_transactions_per_s": round(idle[1], 1)}
        if "web" in args.kinds:
            result["web"] = await web_round(members, counters, idle, keys, agent["id"], args.per_member, args.hold)
            await asyncio.sleep(2.0)
        if "sip" in args.kinds:
            result["sip"] = await sip_round(members, counters, idle, keys, agent["id"], args.sip_per_member,
                                            args.hold)
        return result
    finally:
        for member in members:
            member.proc.kill()
            member.proc.wait()
        sipp.kill()
        await sipp.wait()
        await redis.aclose()
        await drop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    available = sorted(os.sched_getaffinity(0))
    counts = [int(n) for n in args.members.split(",")]
    results = []
    for count in counts:
        member_cores = available[:count] if count <= len(available) else available
        left = [c for c in available if c not in member_cores] or available[-1:]
        os.sched_setaffinity(0, set(left))  # the callers' own cores (shared with a member when none is left)
        results.append(await run_deployment(count, args, member_cores))
        os.sched_setaffinity(0, set(available))
    report: dict[str, Any] = {"cores": len(available), "runs": results,
                              "callers_share_a_member_core": any(n >= len(available) for n in counts)}
    for kind in args.kinds:
        base = next((r[kind]["calls_per_core"] for r in results if r["members"] == 1 and kind in r), None)
        for r in results:
            if kind in r and base and r[kind]["calls_per_core"]:
                r[kind]["vs_one_member_pct"] = round(100 * (r[kind]["calls_per_core"] / base - 1), 1)
    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"{report['cores']} cores; callers share a member's core: {report['callers_share_a_member_core']}")
    print(f"{'members':>7} {'kind':>4} {'calls':>5} {'cpu%/call':>9} {'calls/core':>10} {'vs 1':>7} "
          f"{'redis/setup':>11} {'pg tx/call':>11}")
    for run in report["runs"]:
        for kind in ("web", "sip"):
            if kind in run:
                r = run[kind]
                print(f"{run['members']:>7} {kind:>4} {r['calls']:>5} {r['cpu_per_call_pct']:>9} "
                      f"{r['calls_per_core']!s:>10} {r.get('vs_one_member_pct', '')!s:>7} "
                      f"{r['redis_commands_per_setup']:>11} {r['pg_transactions_per_call_first_10s']:>11}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="1,2", help="member counts to run, e.g. 1,2,4")
    parser.add_argument("--kinds", default="web,sip", type=lambda s: s.split(","))
    parser.add_argument("--per-member", type=int, default=4, help="web calls per member")
    parser.add_argument("--sip-per-member", type=int, default=20, help="phone calls per member")
    parser.add_argument("--hold", type=float, default=8.0, help="seconds the calls are held and measured")
    parser.add_argument("--redis-url", default=os.environ.get("TALKWIRE_TEST_REDIS_URL"))
    parser.add_argument("--database-url", default=os.environ.get("TALKWIRE_TEST_POSTGRES_URL"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.redis_url or not args.database_url:
        parser.error("needs Redis and PostgreSQL: scripts/start_redis.sh, scripts/start_postgres.sh")
    report = asyncio.run(main_async(args))
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
