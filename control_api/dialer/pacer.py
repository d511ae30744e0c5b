"""The server-wide cap on new calls per second: starts spaced evenly, never in bursts."""
from __future__ import annotations


class CallPacer:
    """Hands out start times (seconds on any monotonic clock) at most `per_second` apart."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next_free = float("-inf")

    def available(self, now: float, horizon: float) -> int:
        """How many starts fit between `now` and `now + horizon`."""
        first = max(self._next_free, now)
        if first >= now + horizon:
            return 0
        return int((now + horizon - first) / self.interval - 1e-9) + 1

    def take(self, count: int, now: float) -> list[float]:
        """Reserve `count` starts from `now` on; their times, in order."""
        first = max(self._next_free, now)
        times = [first + i * self.interval for i in range(count)]
        if count:
            self._next_free = times[-1] + self.interval
        return times
