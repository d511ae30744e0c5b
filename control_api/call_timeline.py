"""A live call's timeline: the conversation's updates written to the call record as they happen.

    Conversation.updates ──► TimelineWriter.run() ──► call_events rows (transcript, tool, barge_in, timing, …)
                                                └──► metrics (turn timings, provider errors)
                                                └──► tool actions, handed to `perform` in timeline order

Updates are written in the order they came, one at a time, until `Ended`; a write that fails is logged and
the call goes on (a crash loses nothing already written).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agent_runtime.updates import (
    ActionRequested,
    BargeIn,
    Ended,
    ProviderFailure,
    ToolActivity,
    TranscriptTurn,
    TurnTiming,
)
from control_api.metrics import Metrics
from control_api.storage import Database
from control_api.storage import calls as call_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientEventRecord:
    """A client event (context, action, media, …) for the call timeline, in order with the other updates."""

    kind: str
    data: dict[str, Any]


Perform = Callable[[Mapping[str, Any]], Awaitable[None]]


class Updates(Protocol):
    """Where the updates come from: the conversation's `updates` queue (client events are put on it too)."""

    async def get(self) -> object: ...


class TimelineWriter:
    def __init__(self, db: Database, metrics: Metrics, client_id: str, call_id: str, perform: Perform) -> None:
        """`perform(action)` carries out a tool action (transfers) once it is on the timeline."""
        self.db = db
        self.metrics = metrics
        self.client_id = client_id
        self.call_id = call_id
        self.perform = perform

    async def run(self, updates: Updates) -> None:
        """Write `updates` to the timeline, in order, until Ended."""
        while True:
            update = await updates.get()
            if isinstance(update, Ended):
                return
            try:
                await self.write(update)
            except Exception:
                log.exception("call %s: could not store %r", self.call_id, update)

    async def event(self, kind: str, payload: Mapping[str, Any]) -> None:
        await call_store.append_event(self.db, self.client_id, self.call_id, kind, payload)

    async def write(self, update: object) -> None:
        if isinstance(update, TranscriptTurn):
            extra = {"interrupted": True} if update.interrupted else {}
            role: Literal["user", "agent"] = "agent" if update.role == "agent" else "user"
            await call_store.add_transcript_turn(self.db, self.client_id, self.call_id, role, update.text, **extra)
        elif isinstance(update, ToolActivity):
            await self.event("tool", update.record)
        elif isinstance(update, BargeIn):
            await self.event("barge_in", {"played_ms": update.played_ms})
        elif isinstance(update, TurnTiming):
            self.metrics.observe_timing(update)
            await self.event("timing", {
                "stt_ms": update.stt_ms, "stt_run_ms": update.stt_run_ms,
                "stt_speculative": update.stt_speculative, "llm_speculative": update.llm_speculative,
                "llm_first_token_ms": update.llm_first_token_ms,
                "tts_first_audio_ms": update.tts_first_audio_ms, "response_ms": update.response_ms})
        elif isinstance(update, ProviderFailure):
            self.metrics.provider_error(update.stage)
            await self.event("provider_error", {"stage": update.stage, "message": update.message})
        elif isinstance(update, ActionRequested):
            await self.event("action", update.action)
            await self.perform(update.action)
        elif isinstance(update, ClientEventRecord):
            await self.event("client", {"kind": update.kind, **update.data})
