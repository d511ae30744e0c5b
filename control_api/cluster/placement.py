"""Placement: which member takes a new call, decided in one atomic step in Redis.

The PLACE script (control_api/cluster/scripts.py) reads every live member's load, picks the one with the
smallest share of its capacity that is not draining and has room, and reserves a place on it, all inside Redis:
two members placing at the same moment see each other's reservations, so they spread calls and never overfill
a member. A reservation counts in the member's load until the member takes the call up (its heartbeat drops it
while publishing the new load, in one step) or until it runs out (`reservation_ttl`: the web offer never came,
the member died before dialing).

A Lua script rather than a counter per member: the choice needs every member's load at one instant, and a
script is the one way Redis offers to read and write many keys atomically without optimistic retries.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from control_api.cluster import scripts
from control_api.cluster.keys import Keyspace, text

RETRY_AFTER_SECONDS = 5  # what a 503 "no member has room" suggests (as a member at capacity does)


class NoRoom(Exception):
    """No live member has room for a call (all full or draining, or none reachable)."""

    retry_after = RETRY_AFTER_SECONDS


@dataclass(frozen=True, slots=True)
class Placement:
    member_id: str
    url: str  # the member's public URL: the call's worker_url base
    sip: str | None
    reservation: str  # hand it to the member with the call; it calls Presence.took_up(reservation)
    load: int  # the member's calls and reservations before this one


class Placer:
    def __init__(self, redis: Redis, keys: Keyspace, *, reservation_ttl: float = 15.0) -> None:
        self.redis = redis
        self.keys = keys
        self.reservation_ttl = reservation_ttl
        self._place = redis.register_script(scripts.PLACE)

    async def place(self, reservation: str | None = None) -> Placement:
        """Reserve a place on the least-loaded member with room; NoRoom when there is none. `reservation` names
        the place (the call's id is a good name: the member taking the call up knows it); default: random."""
        reservation = reservation or secrets.token_hex(8)
        found = await self._place(keys=[], args=[self.keys.namespace, reservation,
                                                 int(self.reservation_ttl * 1000)])
        if not found:
            raise NoRoom("no member of the deployment has room for a call")
        member_id, url, sip, load = (text(part) for part in found)
        return Placement(member_id, url, sip or None, reservation, int(load))

    async def cancel(self, placement: Placement) -> None:
        """Give a reservation back (the call will not start, e.g. its record could not be written)."""
        await self.redis.zrem(self.keys.reserved(placement.member_id), placement.reservation)

