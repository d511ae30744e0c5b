"""One token bucket: `burst` tokens, refilled at `per_second`; `take()` says how long until a token is back.

The primitive of every rate limit (API requests per key, data-channel messages per call): cheap enough to run per
message (two float operations), and it never sleeps: the caller decides what a refusal means.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("burst", "per_second", "_tokens", "_at", "_now")

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = float(burst)
        self._now = clock
        self._tokens = self.burst
        self._at = clock()

    def take(self) -> float | None:
        """None when a token was taken; else the seconds until one is back (nothing is taken)."""
        now = self._now()
        tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        self._tokens = tokens
        return (1.0 - tokens) / self.per_second if self.per_second > 0 else float("inf")
