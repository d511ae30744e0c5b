"""An asyncio event loop on virtual time: when nothing is ready to run, time jumps to the next timer.

`asyncio.sleep(30)`, `call_later(7.0, ...)` and the 20 ms `MediaClock` all take no real time, and the order
of events is exactly what it would be on a perfectly punctual machine, so a test of a 30 s silence timeout
runs in milliseconds and never flakes on a busy machine.

How: the loop's `time()` is a number the loop owns. Each iteration asks its selector to wait up to the delay
of the next timer; this selector polls real I/O without waiting, and when none is ready it moves the clock
forward by that delay instead of sleeping. With no timer at all (only threads or real I/O could wake the
loop) it waits for real, briefly.

    run_virtual(main())            # runs main() on a fresh virtual-time loop, returns its result
"""
from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
REAL_WAIT_S = 0.01  # with nothing scheduled, how long to wait for a thread or real I/O


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            return super().select(REAL_WAIT_S)
        self.now += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh virtual-time loop (then close the loop)."""
    loop = VirtualClockLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running (a media clock, a leg's sender), as asyncio.run does."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
