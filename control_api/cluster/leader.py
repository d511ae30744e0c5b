"""One holder at a time of a deployment-wide job (the campaign dialer): a PostgreSQL advisory lock.

    run_while_leader(db, "dialer", dialer.run)
      loop: a connection of its own ── pg_try_advisory_lock(key) ── not granted: try again in `retry` s
            granted: run fn; every `check` s ping that connection (within `check` s)
              ping fails (connection or database lost) ── cancel fn, close the connection, try again
              fn returns or raises ── release (close the connection) and return or raise with it

Why PostgreSQL and not a Redis lease: the lock belongs to the holder's database session, so it goes the moment
that session ends. `kill -9` of the holder closes its socket and the next member takes over within `retry`
seconds, with no lease to run out. The dialer's own state (claims of prospects) is in the same database, so
the lock and what it protects fail together. A holder cut off from the database stops within two `check`
periods; the server lets the lock go only when TCP keepalive gives the session up (`KEEPALIVE_*`, about 8 s),
so the old holder has stopped before another can start. When the server itself ends the session (an operator's
pg_terminate_backend, a server restart) the lock is free at once and the old holder stops at its next check:
for up to `check` seconds two holders may both run. The dialer tolerates that by design: each claim of
prospects is one transaction that locks the campaign and re-checks its caps (control_api/storage/dialer.py), so
no prospect is claimed twice and no cap is exceeded; the lock only keeps the work (and the pacing) in one place.
On SQLite (one process) there is nothing to share: fn simply runs.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from control_api.storage import Database
from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

# The lock connection's own TCP keepalive: the server drops a vanished holder's session (and its lock) after
# about idle + interval * count seconds, which must exceed the holder's own give-up time (2 * check).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 1, 3


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    return int.from_bytes(hashlib.sha256(f"talkwire:{name}".encode()).digest()[:8], "big", signed=True)


class LeadershipLost(Exception):
    """The lock's connection failed while the job ran."""


async def run_while_leader(db: Database, name: str, fn: Callable[[], Awaitable[T]], *,
                           retry: float = 1.0, check: float = 1.0) -> T:
    """Run `fn` only while this process holds the `name` lock, taking it again after a loss; return what fn
    returns. Cancel this to stop (fn is cancelled and the lock given back)."""
    if db.dialect != "postgresql":
        return await fn()
    key = lock_key(name)
    while True:
        try:
            async with db.engine.connect() as raw:
                conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    if await _try_lock(conn, key):
                        log.info("leader for %s", name)
                        return await _lead(conn, fn, check)
                finally:
                    await raw.invalidate()  # ends the session: the lock goes with it, whatever happened
        except LeadershipLost as exc:
            log.warning("lost the %s lock (%s); trying again", name, exc)
        except (OSError, TimeoutError, DBAPIError) as exc:
            log.warning("cannot reach the database for the %s lock (%s); trying again", name, exc)
        await asyncio.sleep(retry)


async def _try_lock(conn: AsyncConnection, key: int) -> bool:
    for setting, value in (("tcp_keepalives_idle", KEEPALIVE_IDLE), ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
                           ("tcp_keepalives_count", KEEPALIVE_COUNT)):
        await conn.execute(text(f"SET {setting} = {int(value)}"))
    return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))


async def _lead(conn: AsyncConnection, fn: Callable[[], Awaitable[T]], check: float) -> T:
    job: asyncio.Future[T] = asyncio.ensure_future(fn())
    try:
        while True:
            done, _ = await asyncio.wait({job}, timeout=check)
            if done:
                return job.result()
            try:
                async with asyncio.timeout(check):
                    await conn.execute(text("SELECT 1"))
            except Exception as exc:
                raise LeadershipLost(str(exc) or type(exc).__name__) from exc
    finally:
        await cancel_and_wait([job])

