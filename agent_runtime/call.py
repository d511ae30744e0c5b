"""A call: one Leg (how audio and events reach the caller) joined to one Conversation (the agent).

Transport-neutral: it knows only the `Leg` contract and the conversation, so the API's call sessions, the
benchmarks and the tests all run a call the same way.

    call = Call(leg, Conversation(leg, config, tools=...), ready=connected)   # ready: optional awaitable
    call.start()                 # or: reason = await call.run()
    ... read call.updates (the conversation's updates; `Ended` is the last) ...
    reason = await call.end(EndReason.API_HANGUP)   # hang up from our side and wait for the end

`run()` returns how the call ended (an `EndReason` where the conversation or the call decided it, else the
leg's own reason string): the leg's reason when the other side hung up, ours when we did. It never leaves the
leg up: whatever ended the run (the conversation's end, a crash, a cancellation), the leg is hung up with that
reason if it is still up. A crash of the conversation is logged and ends the call with `internal_error`; a
`ready` that does not resolve within `ready_timeout` ends it with `connect_timeout` before the conversation
starts.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from agent_runtime.conversation import Conversation
from agent_runtime.updates import Update
from media.end_reason import EndReason
from media.leg import Leg

log = logging.getLogger(__name__)


class Call:
    def __init__(self, leg: Leg, conversation: Conversation, *, ready: Awaitable[Any] | None = None,
                 ready_timeout: float = 30.0) -> None:
        """`ready` resolves once media can flow (WebRTC: ICE and DTLS up); the conversation starts then."""
        self.leg = leg
        self.conversation = conversation
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.task: asyncio.Task[str] | None = None  # set by start()
        self.end_reason: str | None = None  # set once run() is over
        self._running = False
        self._over = asyncio.Event()

    @property
    def updates(self) -> asyncio.Queue[Update]:
        """What the conversation reports as it runs (transcripts, states, timing, …; `Ended` last)."""
        return self.conversation.updates

    def start(self) -> asyncio.Task[str]:
        """Run the call in the background (once); the task's result is `run()`'s."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run(), name="call")
        return self.task

    async def run(self) -> str:
        """Run the call until it ends; returns the end reason."""
        if self._running:
            raise RuntimeError("a call runs once")
        self._running = True
        reason: str = EndReason.ENDED
        try:
            if self.ready is not None:
                await asyncio.wait_for(self.ready, self.ready_timeout)
            reason = await self.conversation.run()
        except TimeoutError:
            reason = EndReason.CONNECT_TIMEOUT
        except Exception:
            log.exception("the conversation failed")
            reason = EndReason.INTERNAL_ERROR
        finally:
            if not self.leg.ended.done():
                try:
                    await self.leg.hangup(reason)
                except Exception:
                    log.exception("hang-up failed")
            self.end_reason = reason
            self._over.set()
        return reason

    async def end(self, reason: str = EndReason.AGENT_HANGUP, *, timeout: float = 10.0) -> str:
        """End the call from our side (hang up the leg with `reason`) and wait for `run()` to be over; returns
        the end reason (the leg's, which is `reason` unless the call had already ended otherwise). Raises
        TimeoutError when the run is not over within `timeout` (e.g. it still waits for `ready`)."""
        if not self.leg.ended.done():
            await self.leg.hangup(reason)
        if not self._running:
            return self.leg.ended.result()
        await asyncio.wait_for(self._over.wait(), timeout)
        assert self.end_reason is not None
        return self.end_reason
