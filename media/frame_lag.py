"""How late each outbound frame is against its leg's 20 ms schedule: the meter, and the histogram bounds its
figures are exported with.

The bounds sit at 20 ms and 40 ms exactly, so "p99 over 20 ms" and "any frame over 40 ms late" (the load
tester's ramp thresholds) are read from bucket counts without interpolation. The server's `GET /metrics` and the
load tester's echo baseline both use them, so the two are measured the same way.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from media.tasks import cancel_and_wait

LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class FrameLagMeter:
    """Lateness of a leg's frames against an ideal 20 ms grid anchored at the leg's earliest frame.

    Frame n is due at anchor + n × 20 ms, where the anchor is the smallest (arrival − n × 20 ms) seen, so a
    frame served on time measures 0 and a frame served late (the loop or the sender fell behind, even if a
    catch-up later restores the cadence) measures how late it was. This is what the shared clock's own
    tick lag cannot show: with many legs, the clock wakes on time but the last leg's sender runs later.
    After a stall longer than 5 frames the grid is re-anchored, as the clock itself does.
    """

    __slots__ = ("_loop", "_observe", "_period", "_anchor", "_count")

    def __init__(self, loop: asyncio.AbstractEventLoop, observe: Callable[[float], None],
                 period: float = 0.02) -> None:
        self._loop = loop
        self._observe = observe
        self._period = period
        self._anchor: float | None = None
        self._count = 0

    def frame(self) -> float:
        offset = self._loop.time() - self._count * self._period
        self._count += 1
        if self._anchor is None or offset < self._anchor:
            self._anchor = offset
        lag = offset - self._anchor
        self._observe(lag)
        if lag > 5 * self._period:
            self._anchor, self._count = None, 0  # the next frame starts a new grid
        return lag


class LoopLagProbe:
    """How late a short sleep on the event loop wakes up, every `interval` seconds, handed to `observe`: the
    loop's own health, whatever the calls are doing. Used by the server's metrics and the load tester's echo."""

    def __init__(self, observe: Callable[[float], None], interval: float = 0.05) -> None:
        self.observe = observe
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str = "loop-lag-probe") -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - due))
