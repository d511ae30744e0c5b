"""Rate limits that hold across the deployment: the token buckets of control_api/limits.py kept in Redis.

`RedisLimiter.take(rule, key)` answers as `MemoryLimiter.take` does (None: allowed; else the seconds until a
token is back), but every member takes from the same bucket, so "60 calls a minute per key" means 60 for the
deployment, not 60 per member. Each take is one atomic script (TAKE_TOKEN) timed by Redis's clock; a bucket
expires once it would be full again. While Redis is out of reach the member falls back to its own buckets
(limits then hold per member) rather than refusing or allowing everything.
"""
from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.cluster import scripts
from control_api.cluster.keys import Keyspace
from control_api.limits import MemoryLimiter, Rule

log = logging.getLogger(__name__)


class RedisLimiter:
    def __init__(self, redis: Redis, keys: Keyspace, fallback: MemoryLimiter | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.fallback = fallback or MemoryLimiter()
        self._take = redis.register_script(scripts.TAKE_TOKEN)

    async def take(self, rule: Rule, key: str) -> float | None:
        if not rule.enabled:
            return None
        try:
            wait = float(await self._take(keys=[self.keys.bucket(rule.name, key)],
                                          args=[repr(rule.per_second), rule.burst]))
        except RedisError as exc:
            log.warning("rate limit %s: Redis unreachable (%s); this member's own bucket decides", rule.name, exc)
            return self.fallback.take_now(rule, key)
        return None if wait <= 0 else wait
