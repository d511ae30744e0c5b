"""The campaign dialer of a deployment: three `talkwire serve` members (real Redis and PostgreSQL on loopback), a
sipp trunk full of answering callees. One member holds the dialer lock (a PostgreSQL advisory lock); `kill -9`
of it mid-campaign hands the dialer to another member within seconds, which dials the rest, and no callee is
dialed twice.
"""
from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from campaign_sipp import ANSWER, CampaignTrunk, campaign_body
from cluster_members import Member, process_members, wait_for
from sipp.harness import SIPP
from sqlalchemy.engine import make_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
]

PROSPECTS = 8


def tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def dialer_holder(database_url: str, members: list[Member]) -> Member | None:
    """The member whose database session holds the advisory lock (the dialer's)."""
    url = make_url(database_url)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                 database=url.database)
    try:
        ports = {row["client_port"] for row in await conn.fetch(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()")}
    finally:
        await conn.close()
    for member in members:
        if member.proc is not None and member.proc.poll() is None and ports & tcp_ports(member.proc.pid):
            return member
    return None


async def test_the_dialer_moves_to_another_member_when_its_holder_dies(tmp_path: Path, postgres_url: str,
                                                                       redis_url: str) -> None:
    trunk = await CampaignTrunk.start(tmp_path / "sipp")
    try:
        async with process_members(tmp_path, postgres_url, redis_url, 3, sip_trunk=trunk.uri,
                                   dialer_max_cps=1.0) as members:
            holder = await wait_for(lambda: dialer_holder(postgres_url, members))
            other = next(m for m in members if m is not holder)
            agent_id = await other.agent()
            phones = [f"{ANSWER}{i:04d}" for i in range(1, PROSPECTS + 1)]
            await other.ok("POST", "/campaigns", json=campaign_body(
                agent_id, phones, name="Failover", use_vanira_managed=True, max_concurrent_calls=10,
                start_campaign=True, retry_busy_calls=False, retry_no_answer_calls=False,
                retry_failed_calls=False))

            await wait_for(lambda: len(trunk.dialogs()) >= 3, timeout=30)
            assert holder.proc is not None
            holder.proc.kill()  # kill -9 of the dialer's holder mid-campaign
            before = {d.callee for d in trunk.dialogs()}
            assert len(before) < PROSPECTS

            await asyncio.to_thread(holder.proc.wait)
            survivors = [m for m in members if m is not holder]
            await wait_for(lambda: dialer_holder(postgres_url, survivors), timeout=15)  # the lock changed hands
            await wait_for(lambda: {d.callee for d in trunk.dialogs()} == set(phones), timeout=45)
            await asyncio.sleep(3.0)  # anything dialed twice would be by now
            dialed = Counter(d.callee for d in trunk.dialogs())
            assert set(dialed) == set(phones)
            assert max(dialed.values()) == 1, dialed
    finally:
        await trunk.stop()
