"""The user agent's background work: tasks (answering a call, sending a BYE, retransmitting a 2xx) and timers,
all cancelled at close, with every failure counted and logged rather than lost."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._handles: set[asyncio.TimerHandle] = set()
        self.errors = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("SIP task %s failed", task.get_name(), exc_info=task.exception())

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._handles.add(handle)

    async def settle(self, within: float) -> None:
        """Give the running tasks up to `within` seconds to finish (e.g. the BYEs of a closing user agent)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=within)

    async def close(self) -> None:
        await cancel_and_wait(list(self.tasks))
        for handle in self._handles:
            handle.cancel()
