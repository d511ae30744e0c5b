"""The deployment's single dialer: a PostgreSQL advisory lock held by one member at a time, handed over within
seconds when its holder stops or loses its database connection; on SQLite the job simply runs."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from control_api.cluster.leader import lock_key, run_while_leader
from control_api.storage import Database


class Job:
    """A never-ending leader job that records who ran it and when, and catches two running at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.overlap = False
        self.started: list[tuple[str, float]] = []
        self.stopped: dict[str, float] = {}

    def for_member(self, name: str):  # noqa: ANN201  (a coroutine function)
        async def run() -> None:
            self.overlap |= bool(self.running)
            self.running.add(name)
            self.started.append((name, time.monotonic()))
            try:
                await asyncio.Future()
            finally:
                self.running.discard(name)
                self.stopped[name] = time.monotonic()
        return run

    async def wait_for_leader(self, exclude: str | None = None, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = self.running - {exclude}
            if leaders:
                return next(iter(leaders))
            await asyncio.sleep(0.02)
        raise AssertionError("no member took the lead")


@pytest.fixture
async def members(postgres_url: str) -> AsyncIterator[list[Database]]:
    dbs = [await Database.open(postgres_url, migrate=i == 0) for i in range(3)]
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


async def test_one_holder_at_a_time_and_a_quick_hand_over_when_it_stops(members: list[Database]) -> None:
    job = Job()
    names = ["a", "b", "c"]
    tasks = {name: asyncio.create_task(run_while_leader(db, "dialer", job.for_member(name), retry=0.1, check=0.1))
             for name, db in zip(names, members, strict=True)}
    try:
        first = await job.wait_for_leader()
        await asyncio.sleep(0.5)
        assert job.running == {first} and not job.overlap
        tasks[first].cancel()  # the holder stops (its process ends: the session and its lock go with it)
        stopped = time.monotonic()
        second = await job.wait_for_leader(exclude=first)
        assert second != first and time.monotonic() - stopped < 2.0
        await asyncio.sleep(0.3)
        assert job.running == {second} and not job.overlap
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_a_holder_that_loses_its_database_session_stops_and_another_takes_over(
        members: list[Database]) -> None:
    job = Job()
    a, b, admin = members
    task_a = asyncio.create_task(run_while_leader(a, "dialer", job.for_member("a"), retry=0.1, check=0.1))
    assert await job.wait_for_leader() == "a"
    task_b = asyncio.create_task(run_while_leader(b, "dialer", job.for_member("b"), retry=0.1, check=0.1))
    try:
        await asyncio.sleep(0.3)
        assert job.running == {"a"}
        # The database ends a's lock session (as when its host vanishes and keepalive gives it up).
        async with admin.engine.connect() as conn:
            key = lock_key("dialer") & 0xFFFF_FFFF_FFFF_FFFF  # a bigint key shows as (classid, objid) halves
            holder = await conn.scalar(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND classid::bigint = :hi AND objid::bigint = :lo"), {"hi": key >> 32, "lo": key & 0xFFFF_FFFF})
            assert holder is not None
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
            terminated = time.monotonic()
        # The server frees the lock at once; a notices at its next check (0.1 s) and stops. For that moment both
        # may run, which the dialer's own atomic claims make harmless (see control_api/cluster/leader.py).
        assert await job.wait_for_leader(exclude="a") == "b"
        await asyncio.sleep(0.5)  # a keeps trying, but b holds the lock now
        assert job.running == {"b"}
        assert job.stopped["a"] - terminated < 0.5
    finally:
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)


async def test_the_job_returns_and_the_lock_is_free_again(members: list[Database]) -> None:
    async def once() -> str:
        return "done"

    assert await run_while_leader(members[0], "report", once) == "done"
    assert await run_while_leader(members[1], "report", once) == "done"


async def test_on_sqlite_the_job_simply_runs(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    try:
        async def once() -> int:
            return 7

        assert await run_while_leader(db, "dialer", once) == 7
    finally:
        await db.close()
