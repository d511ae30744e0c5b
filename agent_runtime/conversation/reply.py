"""A reply in flight: its kind, its sentences on the outbound play-position axis, its timing.

Every piece of agent audio is placed on the outbound "play position" axis (played_total + queued when
pushed), so what the caller heard of a reply is `played_total` compared with its segments' positions.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from agent_runtime.history import History
from agent_runtime.updates import TurnTiming


class ReplyKind(StrEnum):
    WELCOME = "welcome"  # the call's first words (or a transferred-to agent's)
    ANSWER = "answer"  # an LLM reply to the caller's turn (the only kind with a `timing` update)
    ALERT = "alert"  # the silence alert: it does not start a new silence stretch
    ERROR = "error"  # the error message after an STT failure


Piece = tuple[str, dict[str, Any] | None]  # a sentence to speak and the history message it belongs to


@dataclass(frozen=True, slots=True)
class Apology:
    """Words said by the local voice because a provider failed (not the agent's, not kept in history)."""

    text: str


@dataclass(slots=True)
class Segment:
    """One sentence of agent speech and where its audio sits on the outbound play-position axis."""

    text: str
    message: dict[str, Any] | None
    start: int | None = None
    end: int | None = None
    announced: bool = False


@dataclass
class Reply:
    kind: ReplyKind
    speech_end_at: float | None = None
    stt_ms: float | None = None
    stt_run_ms: float | None = None
    stt_speculative: bool | None = None
    llm_speculative: bool = False
    user_message: dict[str, Any] | None = None  # a speculative reply's caller message, dropped with it
    # A speculative reply's audio waits here, with its segment, until the turn ends (see hearing.Speculation).
    held: bool = False
    backlog: list[tuple[Segment, np.ndarray]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    pieces: asyncio.Queue[Piece | Apology | None] = field(default_factory=asyncio.Queue)
    segments: list[Segment] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    open_tool_calls: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    end_call: bool = False
    cancelled: bool = False
    all_queued: bool = False
    done_posted: bool = False
    start_pos: int | None = None
    end_pos: int | None = None
    first_audio_at: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    apologised: bool = False  # the local voice said sorry for this reply: its remaining sentences are dropped
    task: asyncio.Task[None] | None = None
    speaker: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        if not self.held:
            self.released.set()

    def drop_empty_messages(self, history: History) -> None:
        """The reply has played: its history messages that got no words and no tool calls go."""
        for message in self.messages:
            if not message.get("content") and not message.get("tool_calls"):
                history.remove(message)

    def spoken_text(self) -> str:
        return " ".join(s.text for s in self.segments)

    def timing(self, served_by: dict[str, str], usage: dict[str, dict[str, float]]) -> TurnTiming:
        """The stage latencies of this answer, who served each stage and what it used (see `TurnTiming`)."""
        return TurnTiming(
            stt_ms=self.stt_ms, stt_run_ms=self.stt_run_ms, stt_speculative=self.stt_speculative,
            llm_speculative=self.llm_speculative,
            llm_first_token_ms=self.llm_first_token_ms,
            tts_first_audio_ms=self.tts_first_audio_ms,
            response_ms=None if self.first_audio_at is None or self.speech_end_at is None
            else (self.first_audio_at - self.speech_end_at) * 1000,
            served_by=served_by, usage=usage)

    def stop_tasks(self) -> None:
        """Mark the reply cancelled and cancel its LLM and speaker tasks."""
        self.cancelled = True
        for task in (self.task, self.speaker):
            if task is not None:
                task.cancel()
