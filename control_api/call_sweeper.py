"""Web calls created but never connected fail on their own: a sweep of the database, not a timer per call.

    every SWEEP_INTERVAL s: web calls `in-progress`, created over TALKWIRE_WEB_CONNECT_TIMEOUT ago, no session ever
    started (no recording) ──► `failed` / `not_connected`

A timer per created call would be lost with its process (and 2,000 created calls would be 2,000 timers); the
sweep is one indexed query every few seconds, finds what any process left behind, and is safe to run on every
member of a deployment at once (each call is re-checked under its lock). A call fails at most one interval
late; an offer that comes after the timeout is refused (410 CALL_ENDED) by `web_calls.connectable_call` anyway.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.call_recovery import unconnected_web_calls
from control_api.storage.models import utcnow
from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0  # seconds between sweeps at most (less for a short timeout)


class UnconnectedCallSweeper:
    def __init__(self, db: Database, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self.interval = max(0.1, min(SWEEP_INTERVAL, timeout / 4))
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> list[str]:
        """Fail the web calls that waited too long for their browser; their ids."""
        due = await unconnected_web_calls(self.db, utcnow() - timedelta(seconds=self.timeout))
        failed = [call_id for call_id in due if await call_store.fail_unconnected(self.db, call_id)]
        if failed:
            log.info("%d web call(s) never connected: failed as not_connected", len(failed))
        return failed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="unconnected-call-sweeper")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:  # the database is away: the next sweep tries again
                log.exception("sweep of unconnected web calls failed")
