"""This process as a member of a deployment: the cluster parts joined and run for the server's lifetime.

    async with ClusterMember.open(settings, db, member_id=..., url=..., sip=..., load=..., dialer=...) as member:
        member.place()                      POST /calls/create: which member takes a call (NoRoom → 503)
        member.hand_off(placement, request) an outbound phone call to the member placed on
        member.call_started / call_ended    the call directory and the published load
        member.healthy                      False while Redis is out of reach: refuse new calls
        member.drain(live, within)          SIGTERM: take no more calls, wait for live ones
    background: heartbeat (presence), the inbox (when a dialer is given), the lost-member sweep

At start the member first marks lost any open call left under its own name by an earlier run (a fixed
TALKWIRE_MEMBER_ID restarted after a crash); a generated name is new each start and finds none.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.cluster.directory import CallDirectory
from control_api.cluster.handoff import DialRequest, Inbox, OutboundDialer, hand_off
from control_api.cluster.keys import DEFAULT_NAMESPACE, Keyspace
from control_api.cluster.lost import LostMemberSweeper
from control_api.cluster.member import MemberState
from control_api.cluster.placement import Placement, Placer
from control_api.cluster.presence import LoadFn, Presence
from control_api.settings import Settings
from control_api.storage import Database
from control_api.storage import cluster as cluster_store

log = logging.getLogger(__name__)

REDIS_CONNECT_TIMEOUT = 1.0  # seconds
REDIS_READ_TIMEOUT = 5.0
STOP_WAIT = 3.0  # seconds the background loops get to end when the member leaves


class ClusterMember:
    def __init__(self, redis: Redis, keys: Keyspace, presence: Presence, db: Database) -> None:
        self.redis = redis
        self.keys = keys
        self.presence = presence
        self.placer = Placer(redis, keys)
        self.directory = CallDirectory(redis, keys)
        self.sweeper = LostMemberSweeper(redis, keys, db, interval=presence.interval, grace=presence.ttl)
        self._tasks: list[asyncio.Task[None]] = []
        self._inbox: Inbox | None = None
        self._call_ended = asyncio.Event()

    @property
    def id(self) -> str:
        return self.presence.member_id

    @property
    def healthy(self) -> bool:
        return self.presence.healthy

    @property
    def draining(self) -> bool:
        return self.presence.state.draining

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, db: Database, *, member_id: str, url: str, sip: str | None,
                   load: LoadFn, dialer: OutboundDialer | None = None,
                   namespace: str = DEFAULT_NAMESPACE) -> AsyncIterator[ClusterMember]:
        """Join as `member_id`: the name this process writes in its call records (`extra_details.worker`), so the
        survivors find them; TALKWIRE_MEMBER_ID, else `member.generated_member_id()` once per start."""
        if not settings.redis_url:
            raise ValueError("cluster mode needs TALKWIRE_REDIS_URL")
        # Bounded waits: a Redis that vanished (no RST, a dead host) must not hold a heartbeat for minutes; the
        # read timeout stays above the inbox's blocking read (1 s).
        redis = Redis.from_url(settings.redis_url, decode_responses=True, health_check_interval=10,
                               socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_READ_TIMEOUT)
        keys = Keyspace(namespace)
        direct = (settings.member_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        state = MemberState(id=member_id, url=url.rstrip("/"), sip=sip, capacity=settings.max_calls,
                            started_at=time.time(), direct_url=direct)
        member = cls(redis, keys, Presence(redis, keys, state, load, interval=settings.heartbeat_interval,
                                           ttl=settings.heartbeat_ttl), db)
        try:
            leftover = await cluster_store.mark_worker_lost(db, member_id)
            if leftover:
                log.warning("%d call(s) of an earlier run as %s marked worker_lost", len(leftover), member_id)
            try:
                await member.presence.publish()
            except RedisError as exc:  # start anyway: the heartbeat keeps trying, new calls wait for it
                log.warning("cluster: Redis unreachable at start (%s)", exc)
            member._start(dialer)
            yield member
        finally:
            await member._stop()
            await redis.aclose()

    def _start(self, dialer: OutboundDialer | None) -> None:
        self._tasks.append(asyncio.create_task(self.presence.run(), name="cluster-heartbeat"))
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="cluster-sweeper"))
        if dialer is not None:
            self._inbox = Inbox(self.redis, self.keys, self.id, dialer)
            self._tasks.append(asyncio.create_task(self._inbox.run(), name="cluster-inbox"))

    async def _stop(self) -> None:
        # A cancellation can be lost inside the Redis client (seen, rarely, as tasks stuck "cancelling"): the
        # loops also stop at their next turn by flag, and the wait for them is bounded.
        self.presence.stopping = True
        if self._inbox is not None:
            self._inbox.stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_WAIT)
            if stuck:
                log.warning("cluster: %s did not stop within %.0f s", [t.get_name() for t in stuck], STOP_WAIT)
        self._tasks.clear()
        try:
            await self.presence.leave()
        except RedisError as exc:
            log.warning("cluster: could not leave cleanly (%s); the heartbeat will run out", exc)

    async def place(self, reservation: str | None = None) -> Placement:
        """A place on the least-loaded member (perhaps this one), named `reservation` (pass the call id). NoRoom:
        none has room, or Redis is out."""
        return await self.placer.place(reservation)

    async def hand_off(self, placement: Placement, request: DialRequest) -> None:
        await hand_off(self.redis, self.keys, placement.member_id, request)

    async def call_started(self, call_id: str, reservation: str | None = None) -> None:
        """A call began here (its load already counts it): register it; take up its placement, if any."""
        if reservation:
            self.presence.took_up(reservation)
        else:
            self.presence.poke()
        try:
            await self.directory.add(self.id, call_id)
        except RedisError as exc:  # the call goes on; only other members cannot find it
            log.warning("call %s: not in the call directory (%s)", call_id, exc)

    async def call_ended(self, call_id: str) -> None:
        """A call here ended (its load no longer counts it): unregister it."""
        self.presence.poke()
        self._call_ended.set()
        try:
            await self.directory.remove(self.id, call_id)
        except RedisError as exc:
            log.warning("call %s: still in the call directory (%s)", call_id, exc)

    async def drain(self, live: Callable[[], int], within: float) -> bool:
        """Take no more calls and wait up to `within` s for the live ones to end (`live()` counts them; each
        `call_ended` looks again); whether they all did."""
        try:
            await self.presence.set_draining(True)
        except RedisError as exc:
            log.warning("cluster: could not publish draining (%s)", exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while live() > 0:
                    self._call_ended.clear()
                    with contextlib.suppress(TimeoutError):  # look again now and then, whoever forgot to tell
                        async with asyncio.timeout(1.0):
                            await self._call_ended.wait()
        return live() == 0
