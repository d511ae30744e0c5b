"""Rate limits across members: every member takes from one token bucket in Redis; without Redis each member
falls back to its own bucket."""
from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from control_api.cluster.keys import Keyspace
from control_api.cluster.limiter import RedisLimiter
from control_api.limits import Rule


async def test_members_share_one_bucket(redis_client: Redis, redis_url: str, cluster_keys: Keyspace) -> None:
    other = Redis.from_url(redis_url, decode_responses=True)
    try:
        a, b = RedisLimiter(redis_client, cluster_keys), RedisLimiter(other, cluster_keys)
        rule = Rule("calls_per_key", per_minute=60, burst=3)  # 1 a second, 3 at once
        results = await asyncio.gather(*(limiter.take(rule, "key-1") for limiter in (a, b, a, b, a)))
        assert sum(r is None for r in results) == 3  # the burst, across both members
        waits = [r for r in results if r is not None]
        assert all(0 < w <= 1.0 for w in waits)
        assert await a.take(rule, "key-2") is None  # another key: its own bucket
        await asyncio.sleep(1.05)
        assert await b.take(rule, "key-1") is None  # a token came back
        assert await a.take(rule, "key-1") is not None
        assert 0 < await redis_client.pttl(cluster_keys.bucket("calls_per_key", "key-1")) <= 4000
        assert await a.take(Rule("off", per_minute=0, burst=0), "key-1") is None  # a disabled rule
    finally:
        await other.aclose()


async def test_without_redis_a_member_limits_on_its_own() -> None:
    lost = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        limiter = RedisLimiter(lost, Keyspace("nowhere"))
        rule = Rule("calls_per_key", per_minute=60, burst=2)
        assert [await limiter.take(rule, "k") is None for _ in range(3)] == [True, True, False]
    finally:
        await lost.aclose()
