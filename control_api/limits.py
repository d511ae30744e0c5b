"""Rate limits and quotas: token buckets keyed by (rule, key), answered with how long to wait.

The publishable key ships in every customer's web page, so anyone holds it: without limits one script created
2,200 calls in 20 s. Each rule is a bucket of `burst` tokens refilled at `per_minute` / 60 per second; a request
takes one token or is refused with the seconds until one is back (the `Retry-After` of a 429).

`MemoryLimiter` keeps buckets in this process (the single-process default). A deployment of many members uses a
limiter with the same `take()` backed by Redis, so the limits hold deployment-wide.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from media.token_bucket import TokenBucket

MAX_BUCKETS = 100_000  # keys remembered; the least recently used go first (varying keys cannot grow memory)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # e.g. "calls_per_key"; also the label of the refusal metric
    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.burst > 0


class Limiter(Protocol):
    async def take(self, rule: Rule, key: str) -> float | None:
        """None when allowed (a token was taken), else the seconds until a token is back."""
        ...


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def take_now(self, rule: Rule, key: str) -> float | None:
        if not rule.enabled:
            return None
        slot = (rule.name, key)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = TokenBucket(rule.per_second, rule.burst, self._now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(slot)
        return bucket.take()

    async def take(self, rule: Rule, key: str) -> float | None:
        return self.take_now(rule, key)


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
