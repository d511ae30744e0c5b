"""cancel_and_wait: what every component uses to stop the tasks it started."""
from __future__ import annotations

import asyncio

import pytest

from media.tasks import cancel_and_wait


async def test_cancels_waits_for_cleanup_and_keeps_failures_to_the_tasks() -> None:
    cleaned: list[str] = []

    async def runs_forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself takes a moment
            cleaned.append("runner")

    async def fails() -> None:
        raise RuntimeError("boom")

    async def finished() -> str:
        return "done"

    runner = asyncio.create_task(runs_forever())
    failed = asyncio.create_task(fails())
    done = asyncio.create_task(finished())
    await asyncio.sleep(0)
    await cancel_and_wait([runner, None, failed, done])
    assert cleaned == ["runner"] and runner.cancelled()
    assert isinstance(failed.exception(), RuntimeError) and done.result() == "done"
    await cancel_and_wait([])  # nothing to do


async def test_the_caller_can_still_be_cancelled_while_it_waits() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(3600)

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([task]))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
