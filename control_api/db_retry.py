"""Writes of a live call that must not be lost: retried with backoff when the database fails for a while.

SQLite in this process has one writer at a time (`control_api.storage.Database`), so a busy process waits
its turn instead of failing; what still fails (another process holding the lock past busy_timeout, PostgreSQL
restarting, a dropped connection) is retried here, from 50 ms doubling to 2 s, for up to RETRY_FOR seconds.
`LookupError` (the call record is gone) is not retried: there is nothing to write to.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.05
MAX_DELAY = 2.0
RETRY_FOR = 120.0  # then the error is raised: the database is down, not busy


async def retrying(what: str, write: Callable[[], Awaitable[T]], *, retry_for: float = RETRY_FOR) -> T:
    """`await write()` until it succeeds; `what` names it in the log (one line per failed try)."""
    deadline = time.monotonic() + retry_for
    delay = FIRST_DELAY
    while True:
        try:
            return await write()
        except LookupError:
            raise
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed (%s: %s); retrying in %.2f s", what, type(exc).__name__, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
