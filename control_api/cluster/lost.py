"""Calls of a member that died: every member sweeps, and the first to see one marks its calls lost.

    LostMemberSweeper.run(): every `interval` s
      members named by open call records (storage.cluster.open_call_workers), less the live ones (presence)
      missing continuously for `grace` s ── mark_worker_lost (failed / worker_lost), forget its directory
                                              entries and drop its inbox

Missing "continuously for `grace`" rather than "missing once": after a Redis restart every member is absent
until its next heartbeat (`interval`), and a sweep in that gap must not end live calls. A sweep that cannot
reach Redis or the database does nothing. With the defaults (heartbeat TTL 3 s, grace 3 s, sweep 1 s) a dead
member's calls are marked within about 7 s.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from control_api.cluster.directory import CallDirectory
from control_api.cluster.keys import Keyspace
from control_api.cluster.presence import live_members
from control_api.storage import Database
from control_api.storage import cluster as cluster_store

log = logging.getLogger(__name__)


class LostMemberSweeper:
    def __init__(self, redis: Redis, keys: Keyspace, db: Database, *, interval: float = 1.0, grace: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.keys = keys
        self.db = db
        self.interval = interval
        self.grace = grace
        self.clock = clock
        self.directory = CallDirectory(redis, keys)
        self._missing_since: dict[str, float] = {}

    async def sweep(self) -> dict[str, list[str]]:
        """One pass; the calls marked lost, by member."""
        try:
            named = await cluster_store.open_call_workers(self.db)
            live = {member.id for member in await live_members(self.redis, self.keys)}
        except (RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("lost-member sweep skipped: %s", exc)
            return {}
        now = self.clock()
        missing = named - live
        self._missing_since = {m: self._missing_since.get(m, now) for m in missing}
        marked: dict[str, list[str]] = {}
        for member_id, since in list(self._missing_since.items()):
            if now - since < self.grace:
                continue
            calls = await cluster_store.mark_worker_lost(self.db, member_id)
            await self.directory.forget(member_id)
            await self.redis.delete(self.keys.inbox(member_id))
            del self._missing_since[member_id]
            marked[member_id] = calls
            log.warning("member %s is gone: %d call(s) marked worker_lost", member_id, len(calls))
        return marked

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except (RedisError, SQLAlchemyError, OSError) as exc:
                log.warning("lost-member sweep failed: %s", exc)
            await asyncio.sleep(self.interval)
