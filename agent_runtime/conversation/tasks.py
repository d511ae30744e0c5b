"""The conversation's background tasks (LLM, TTS, STT runs, the playback watcher, the event reader).

A task that fails (raises anything but a cancellation) is a bug: `on_failure` ends the call with
`internal_error` rather than leaving the caller on a line nobody answers.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Tasks:
    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"conversation-{name}")
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("conversation task %s failed", task.get_name(), exc_info=task.exception())
            self._on_failure()

    async def cancel_all(self) -> None:
        await cancel_and_wait(list(self._running))
