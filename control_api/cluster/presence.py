"""Presence and load: each member publishes who it is and how busy it is, on a short-lived heartbeat.

    Presence.run()  every `interval` s, or at once after `poke()`: HEARTBEAT script (hash + TTL, index, taken-up
                    reservations) ── a member that stops (kill -9, a frozen host) drops out `ttl` s later
    live_members()  the members whose heartbeat has not run out, with their live reservations

A member that cannot reach Redis keeps its live calls but is not `healthy` once its last heartbeat is older
than `ttl`: it must refuse new calls until Redis is back (nobody could place or find them).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.cluster import scripts
from control_api.cluster.keys import Keyspace, text
from control_api.cluster.member import MemberState

log = logging.getLogger(__name__)

LoadFn = Callable[[], Mapping[str, int]]  # this member's live calls by leg kind, e.g. {"web": 3, "sip": 12}


class Presence:
    def __init__(self, redis: Redis, keys: Keyspace, state: MemberState, load: LoadFn, *,
                 interval: float = 1.0, ttl: float = 3.0) -> None:
        if ttl <= interval:
            raise ValueError("the heartbeat TTL must be longer than its interval")
        self.redis = redis
        self.keys = keys
        self.interval = interval
        self.ttl = ttl
        self._state = replace(state, started_at=state.started_at or time.time())
        self._load = load
        self._taken: list[str] = []  # reservations taken up since the last heartbeat
        self._poked = asyncio.Event()
        self.stopping = False  # set before cancelling run(): it ends at its next turn even if a cancel is lost
        self._last_ok = float("-inf")  # monotonic time of the last successful heartbeat
        self._heartbeat = redis.register_script(scripts.HEARTBEAT)

    @property
    def member_id(self) -> str:
        return self._state.id

    @property
    def state(self) -> MemberState:
        """What the next heartbeat publishes (the load as of now)."""
        return replace(self._state, calls_by_leg=dict(self._load()))

    @property
    def healthy(self) -> bool:
        """Whether this member is visible to the deployment (its last heartbeat reached Redis within `ttl`)."""
        return time.monotonic() - self._last_ok < self.ttl

    def took_up(self, reservation: str) -> None:
        """A call placed here under `reservation` has started (it is in the load now): the next heartbeat, which
        `poke()` brings forward, drops the reservation in the same step as it publishes the new load."""
        self._taken.append(reservation)
        self.poke()

    def poke(self) -> None:
        """Publish soon (the load changed); heartbeats requested while one is under way are merged."""
        self._poked.set()

    async def publish(self) -> None:
        """One heartbeat now. Raises RedisError when Redis cannot be reached (the taken-up list is kept)."""
        taken, self._taken = self._taken, []
        fields = json.dumps(self.state.fields())
        try:
            await self._heartbeat(keys=[self.keys.member(self.member_id), self.keys.members,
                                        self.keys.reserved(self.member_id)],
                                  args=[self.member_id, int(self.ttl * 1000), fields, *taken])
        except BaseException:
            self._taken[:0] = taken
            raise
        self._last_ok = time.monotonic()

    async def set_draining(self, draining: bool = True) -> None:
        """Stop (or resume) taking new calls: placement skips a draining member from its next heartbeat on."""
        self._state = replace(self._state, draining=draining)
        await self.publish()

    async def run(self) -> None:
        """Heartbeat until cancelled (or `stopping`); a Redis failure is logged and retried on the next beat."""
        while not self.stopping:
            self._poked.clear()
            try:
                await self.publish()
            except RedisError as exc:
                log.warning("cluster heartbeat failed (Redis unreachable?): %s", exc)
            try:
                async with asyncio.timeout(self.interval):  # (wait_for may lose a cancellation on 3.11)
                    await self._poked.wait()
            except TimeoutError:
                pass

    async def leave(self) -> None:
        """Drop out of the deployment at once (a clean stop; its calls have ended)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.member(self.member_id), self.keys.reserved(self.member_id))
            pipe.zrem(self.keys.members, self.member_id)
            await pipe.execute()


async def live_members(redis: Redis, keys: Keyspace) -> list[MemberState]:
    """Every member whose heartbeat has not run out, by id, with its live reservations counted."""
    raw = await redis.register_script(scripts.LIVE_MEMBERS)(keys=[], args=[keys.namespace])
    members: list[MemberState] = []
    for flat, reserved in zip(raw[0::2], raw[1::2], strict=True):
        fields = {text(k): text(v) for k, v in zip(flat[0::2], flat[1::2], strict=True)}
        state = MemberState.from_fields(fields, reserved=int(reserved))
        if state is not None:
            members.append(state)
    return sorted(members, key=lambda m: m.id)

