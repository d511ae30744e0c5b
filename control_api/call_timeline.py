"""A live call's timeline: the conversation's updates written to the call record as they happen.

    Conversation.updates ──► TimelineWriter.run() ──► call_events rows (transcript, tool, barge_in, timing, …)
                                                └──► metrics (turn timings, provider errors)
                                                └──► tool actions, handed to `perform` in timeline order

Updates are written in the order they came. When several are waiting (a busy process: the database's one writer
is slower than the call), they are written together, up to BATCH_MAX in one transaction; an action ends a batch,
so it is on the timeline before it is carried out. A write that fails is retried with backoff
(`control_api.db_retry`), never dropped while the database can be reached; a crash loses nothing already written.

Client events (context updates, actions, media, …) have a per-call budget of rows and bytes (`ClientEventBudget`,
TALKWIRE_MAX_TIMELINE_ROWS_PER_CALL / _BYTES_PER_CALL): past it the call session refuses them, nothing is written.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent_runtime.updates import (
    ActionRequested,
    BargeIn,
    Ended,
    LanguageSwitch,
    ProviderFailure,
    ToolActivity,
    TranscriptTurn,
    TurnTiming,
    Usage,
)
from control_api.db_retry import retrying
from control_api.metrics import Metrics
from control_api.storage import Database
from control_api.storage import calls as call_store

log = logging.getLogger(__name__)

BATCH_MAX = 50  # timeline entries written in one transaction at most

Entry = tuple[str, Mapping[str, Any]]  # (kind, payload) of one timeline row


@dataclass(frozen=True, slots=True)
class ClientEventRecord:
    """A client event (context, action, media, …) for the call timeline, in order with the other updates."""

    kind: str
    data: dict[str, Any]


Perform = Callable[[Mapping[str, Any]], Awaitable[None]]


class Updates(Protocol):
    """Where the updates come from: the conversation's `updates` queue (client events are put on it too)."""

    async def get(self) -> object: ...

    def get_nowait(self) -> object:
        """The next update if one is waiting, else raise asyncio.QueueEmpty."""
        ...


class ClientEventBudget:
    """How many client events (rows) and how many bytes of them (their JSON) one call may add to its timeline;
    0 turns a limit off."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self.bytes = 0

    def admit(self, data: Mapping[str, Any]) -> bool:
        """Count `data` in and say True, or False (counting nothing) when it would go past a limit."""
        size = len(json.dumps(data, default=str, ensure_ascii=False).encode())
        if (self.max_rows and self.rows + 1 > self.max_rows) or (self.max_bytes and self.bytes + size > self.max_bytes):
            return False
        self.rows += 1
        self.bytes += size
        return True


class TimelineWriter:
    def __init__(self, db: Database, metrics: Metrics, client_id: str, call_id: str, perform: Perform,
                 budget: ClientEventBudget | None = None) -> None:
        """`perform(action)` carries out a tool action (transfers) once it is on the timeline."""
        self.db = db
        self.metrics = metrics
        self.client_id = client_id
        self.call_id = call_id
        self.perform = perform
        self.budget = budget or ClientEventBudget(0, 0)

    async def run(self, updates: Updates) -> None:
        """Write `updates` to the timeline, in order, until Ended."""
        while True:
            batch = [await updates.get()]
            while len(batch) < BATCH_MAX and not isinstance(batch[-1], (Ended, ActionRequested)):
                try:
                    batch.append(updates.get_nowait())
                except asyncio.QueueEmpty:
                    break
            entries = [entry for update in batch for entry in self.entries(update)]
            if entries:
                await self._store(entries)
            last = batch[-1]
            if isinstance(last, ActionRequested):
                try:
                    await self.perform(last.action)
                except Exception:
                    log.exception("call %s: could not carry out %r", self.call_id, last.action)
            elif isinstance(last, Ended):
                return

    async def event(self, kind: str, payload: Mapping[str, Any]) -> None:
        await self._store([(kind, payload)])

    async def _store(self, entries: list[Entry]) -> None:
        try:
            await retrying(f"call {self.call_id}: timeline write",
                           lambda: call_store.append_events(self.db, self.client_id, self.call_id, entries))
        except LookupError:
            log.info("call %s: record gone, %d timeline entries not stored", self.call_id, len(entries))
        except Exception:
            log.exception("call %s: could not store %d timeline entries", self.call_id, len(entries))

    def entries(self, update: object) -> list[Entry]:
        """The timeline rows of one update (none for Ended), with its metrics observed."""
        if isinstance(update, TranscriptTurn):
            extra = {"interrupted": True} if update.interrupted else {}
            role = "agent" if update.role == "agent" else "user"
            return [("transcript", {"role": role, "text": update.text, **extra})]
        if isinstance(update, ToolActivity):
            return [("tool", update.record)]
        if isinstance(update, BargeIn):
            return [("barge_in", {"played_ms": update.played_ms})]
        if isinstance(update, TurnTiming):
            self.metrics.observe_timing(update)
            return [("timing", {
                "stt_ms": update.stt_ms, "stt_run_ms": update.stt_run_ms,
                "stt_speculative": update.stt_speculative, "llm_speculative": update.llm_speculative,
                "llm_first_token_ms": update.llm_first_token_ms,
                "tts_first_audio_ms": update.tts_first_audio_ms, "response_ms": update.response_ms,
                "served_by": update.served_by, "usage": update.usage})]
        if isinstance(update, ProviderFailure):
            self.metrics.provider_error(update.stage, update.provider)
            return [("provider_error", {"stage": update.stage, "message": update.message,
                                        "provider": update.provider, "fallback": update.fallback})]
        if isinstance(update, LanguageSwitch):
            return [("language_switch", {"from": update.from_language, "to": update.to_language,
                                         "source": update.source})]
        if isinstance(update, Usage):
            return [("usage", {"providers": update.providers})]
        if isinstance(update, ActionRequested):
            return [("action", update.action)]
        if isinstance(update, ClientEventRecord):
            return [("client", {"kind": update.kind, **update.data})]
        return []
