"""The calls live on this worker, by call id.

A call is registered while it runs and removed once its record is finished. A web offer reserves its call id
while the answer is being made, so a second offer for the same call is refused (409) even before the first
one's call is running; a reserved id reads as no live call yet (`get` gives None).

Entries are `LiveCall`s, the little the rest of the API needs of a running call (its leg, its conversation,
a way to wait for its end): `control_api.call_session.CallSession` is the one implementation.
"""
from __future__ import annotations

import asyncio
from typing import Protocol

from agent_runtime.conversation import Conversation
from media.end_reason import EndReason
from media.leg import Leg


class LiveCall(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def leg(self) -> Leg: ...

    @property
    def conversation(self) -> Conversation: ...

    async def finished(self) -> None:
        """Return once the call is over and its record is finished."""


class LiveCalls:
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall | None] = {}  # None: reserved by a web offer being answered

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return sum(1 for call in self._calls.values() if call is not None)

    @property
    def occupied(self) -> int:
        """Live calls and reservations: the places taken on this worker."""
        return len(self._calls)

    def count_of(self, client_id: str) -> int:
        """The live calls of one client (tenant)."""
        return sum(1 for call in self._calls.values() if call is not None and call.client_id == client_id)

    def by_leg(self) -> dict[str, int]:
        """Live calls by leg kind, e.g. {"webrtc": 3, "sip": 12} (a member of a deployment publishes it)."""
        kinds: dict[str, int] = {}
        for call in self._calls.values():
            if call is not None:
                kinds[call.leg.kind] = kinds.get(call.leg.kind, 0) + 1
        return kinds

    def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def reserve(self, call_id: str) -> bool:
        """Hold `call_id` for a call about to start; False when it is live or held already."""
        if call_id in self._calls:
            return False
        self._calls[call_id] = None
        return True

    def release(self, call_id: str) -> None:
        """Drop a reservation whose call did not start (a live call stays)."""
        if call_id in self._calls and self._calls[call_id] is None:
            del self._calls[call_id]

    def add(self, call_id: str, call: LiveCall) -> None:
        self._calls[call_id] = call

    def remove(self, call_id: str, call: LiveCall) -> None:
        """Unregister `call` (only that call: a newer one under the same id stays)."""
        if self._calls.get(call_id) is call:
            del self._calls[call_id]

    async def end_all(self, reason: EndReason) -> None:
        """Hang up every live call and wait until each one's record is finished."""
        calls = [call for call in self._calls.values() if call is not None]
        for call in calls:
            await call.leg.hangup(reason)
        await asyncio.gather(*(call.finished() for call in calls), return_exceptions=True)
