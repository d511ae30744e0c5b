"""Stopping background tasks: the one way every component cancels what it started and waits for it to end."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel `tasks` (None entries are skipped, finished ones are left as they are) and wait until every one
    has ended. What they raised, their cancellation included, is not raised here: a component that stops must
    not fail because one of its tasks had failed (a task whose failure matters logs it where it fails)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
