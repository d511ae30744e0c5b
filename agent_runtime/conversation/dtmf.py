"""Keypad digits (SIP legs report them as {"type": "dtmf", "digits": "5"}, one event per key).

Keys pressed closer together than DTMF_GAP_S are one entry; once the caller pauses that long, the agent
hears them as one user turn ("The caller pressed 1 2 3.").
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_GAP_S = 1.5  # keys pressed closer together than this are one entry ("the caller pressed 1 2 3")


class DtmfCollector:
    def __init__(self, run_soon: Callable[[Callable[[], Awaitable[None]]], None],
                 on_entry: Callable[[str], Awaitable[None]]) -> None:
        """`run_soon` runs a coroutine function on the conversation's loop in order with its events;
        `on_entry(text)` gets the finished entry as the caller's words."""
        self._run_soon = run_soon
        self._on_entry = on_entry
        self._digits: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def on_message(self, message: dict[str, Any]) -> None:
        """The `dtmf` data-channel handler: collect the key(s), restart the gap timer."""
        digits = [d for d in str(message.get("digits") or "").upper() if d in DTMF_DIGITS]
        if not digits:
            return
        self._digits.extend(digits)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(DTMF_GAP_S, self._run_soon, self._done)

    async def _done(self) -> None:
        self._timer = None
        digits, self._digits = self._digits, []
        await self._on_entry("The caller pressed " + " ".join(digits) + ".")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
