"""The server-wide cap on new calls per second: starts spaced evenly, never in bursts (`CallPacer` plans the
starts of a tick, `SendGate` spaces the INVITEs themselves)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


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


class SendGate:
    """One new call at a time through the part that sends its INVITE, each at least `interval` after the one
    before: the pacing holds at the trunk even when the database work before each INVITE takes uneven time.

        ticket = await gate.enter()   # waits for the gate and for the interval since the last call went out
        ... send the INVITE ...
        ticket.leave()                # idempotent; the next call's interval counts from here
    """

    def __init__(self, per_second: float, monotonic: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.interval = 1.0 / per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._last = float("-inf")

    async def enter(self) -> Ticket:
        await self._lock.acquire()
        ticket = Ticket(self)
        try:
            wait = self._last + self.interval - self._monotonic()
            if wait > 0:
                ticket.waited = True
                await self._sleep(wait)
        except BaseException:
            ticket.leave()
            raise
        return ticket

    def _leave(self) -> None:
        self._last = self._monotonic()
        self._lock.release()


class Ticket:
    def __init__(self, gate: SendGate) -> None:
        self._gate: SendGate | None = gate
        self.waited = False  # whether the gate held the call back for the interval

    def leave(self) -> None:
        if self._gate is not None:
            gate, self._gate = self._gate, None
            gate._leave()
