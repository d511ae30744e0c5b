"""One shared 20 ms clock per worker process.

Every leg that needs pacing awaits `tick()` instead of running its own timer, so a worker with many
calls wakes once per 20 ms, and per-tick work can be batched across legs (the SIP sender encodes all
its legs' frames in one array operation). The clock schedules against absolute deadlines
(start + n × 20 ms), so a late wake-up never shifts later ticks; the lag of each wake-up is reported.
"""
from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass

from media.frames import FRAME_MS
from media.tasks import cancel_and_wait


@dataclass(frozen=True, slots=True)
class Tick:
    index: int
    scheduled: float  # loop time the tick was due
    lag: float  # seconds between due and actual wake-up


class MediaClock:
    def __init__(self, period: float = FRAME_MS / 1000) -> None:
        self.period = period
        self._waiter: asyncio.Future[Tick] | None = None
        self._task: asyncio.Task | None = None
        self.lag_observers: list[Callable[[float], None]] = []
        self.last: Tick | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def tick(self) -> Tick:
        """Wait for the next tick. Starts the clock on first use."""
        self.start()
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._waiter)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        index = 0
        while True:
            index += 1
            due = start + index * self.period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if now - due > 5 * self.period:
                # The loop was stalled for a long time: re-anchor instead of bursting to catch up.
                start, index, due = now, 0, now
            tick = Tick(index, due, max(0.0, now - due))
            self.last = tick
            for observe in self.lag_observers:
                observe(tick.lag)
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(tick)


def settle_heap(*, collect: bool = True) -> None:
    """Take every object alive now out of the cyclic garbage collector's reach (`gc.freeze`).

    A full collection walks every tracked object and holds the event loop meanwhile: a started server has
    ~150 000 of them (modules, the ORM's metadata, models), which made each full collection a ~90 ms gap in
    every call's audio. What exists once start-up is over lives as long as the process, so it is frozen:
    full collections then walk only what calls create. `collect` first clears start-up garbage (one pause
    before serving); without it nothing pauses, and garbage alive now stays for good (bounded: once).
    """
    if collect:
        gc.collect()
    gc.freeze()
