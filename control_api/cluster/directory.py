"""Which member runs a live call: the deployment-wide view that lets any member act on any call.

A member adds a call when it starts and removes it when it ends; `owner(call_id)` answers with the member's
state only while that member is live. A member that died leaves its entries behind until a survivor `forget`s
them (control_api/cluster/lost.py). The call record (PostgreSQL) stays the truth about a call; this is only
where to find it while it runs.
"""
from __future__ import annotations

from redis.asyncio import Redis

from control_api.cluster.keys import Keyspace, text
from control_api.cluster.member import MemberState


class CallDirectory:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self.redis = redis
        self.keys = keys

    async def add(self, member_id: str, call_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.calls, call_id, member_id)
            pipe.sadd(self.keys.member_calls(member_id), call_id)
            await pipe.execute()

    async def remove(self, member_id: str, call_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.calls, call_id)
            pipe.srem(self.keys.member_calls(member_id), call_id)
            await pipe.execute()

    async def owner_id(self, call_id: str) -> str | None:
        """The member that registered the call (live or not)."""
        owner = await self.redis.hget(self.keys.calls, call_id)
        return None if owner is None else text(owner)

    async def owner(self, call_id: str) -> MemberState | None:
        """The live member running the call; None when no live member runs it."""
        member_id = await self.owner_id(call_id)
        return None if member_id is None else await self.state_of(member_id)

    async def state_of(self, member_id: str) -> MemberState | None:
        """A member's published state while it is live; None once its heartbeat has run out."""
        fields = await self.redis.hgetall(self.keys.member(member_id))
        return MemberState.from_fields({text(k): text(v) for k, v in fields.items()})

    async def forget(self, member_id: str) -> int:
        """Drop every entry of a member that is gone; how many there were."""
        call_ids = [text(c) for c in await self.redis.smembers(self.keys.member_calls(member_id))]
        async with self.redis.pipeline(transaction=True) as pipe:
            if call_ids:
                pipe.hdel(self.keys.calls, *call_ids)
            pipe.delete(self.keys.member_calls(member_id))
            await pipe.execute()
        return len(call_ids)
