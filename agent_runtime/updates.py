"""What a conversation reports while it runs, for the call record (the control API persists these).

`Conversation.updates` is an `asyncio.Queue` of these small dataclasses; the call runner consumes it.
`Ended` is always the last one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    role: str  # "user" | "agent"
    text: str  # for the agent: what the caller actually heard (ends with "…" when cut off)
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: str  # "listening" | "thinking" | "speaking"


@dataclass(frozen=True, slots=True)
class BargeIn:
    played_ms: int  # how much of the agent's reply the caller heard before speaking over it


@dataclass(frozen=True, slots=True)
class ToolActivity:
    record: dict[str, Any]  # one record from the tools layer (tool_call, tool_result, tool_cancel, …)


@dataclass(frozen=True, slots=True)
class ActionRequested:
    """A tool asked the call runner to act (agent_transfer, human_transfer) once the agent's words played."""

    action: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnTiming:
    """Stage latencies of one agent response, in milliseconds (None where a stage did not happen).

    `response_ms` runs from the end of the caller's speech (endpointing decided) to the first agent audio
    handed to the leg; the endpointing silence itself is not in it. `stt_ms` runs from the same instant to
    the final transcript: it is what STT added to the response. `stt_run_ms` is the STT call's own duration
    (queueing for the STT worker included); `stt_speculative` says the call started at the caller's pause,
    before the end of speech was decided (then `stt_ms` can be far below `stt_run_ms`, down to ~0).
    `llm_speculative`: the reply (LLM and TTS) started on that transcript before the end of speech and its
    audio was held until then; `llm_first_token_ms` and `tts_first_audio_ms` still time the stages
    themselves, and `response_ms` still ends when the first audio was handed to the leg.
    """

    stt_ms: float | None = None
    stt_run_ms: float | None = None
    stt_speculative: bool | None = None
    llm_speculative: bool = False
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    response_ms: float | None = None
    # Which provider served each stage ("stt"/"llm"/"tts" -> "DEEPGRAM", …; a fallback's name when the
    # primary failed), and what this turn used of each provider (see `Usage`).
    served_by: dict[str, str] = field(default_factory=dict)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderFailure:
    """A provider failed (an error or a missed deadline); count it by `provider`. `fallback`: the provider
    that took over the rest of the turn (None: the caller heard an apology, or nothing was lost)."""

    stage: str  # "stt" | "llm" | "tts"
    message: str
    provider: str = ""  # "DEEPGRAM", "AZURE", "ELEVENLABS", …
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class LanguageSwitch:
    """The call's language changed (timeline `language_switch`): `source` is `agent` for a non-English
    `language` from the start (`from_language` None), else the provider that identified the caller's."""

    from_language: str | None
    to_language: str
    source: str


@dataclass(frozen=True, slots=True)
class Usage:
    """What the whole call used, by provider, sent once before `Ended`: `stt_audio_s` (audio sent to STT),
    `tts_characters` (text sent to TTS), `prompt_tokens` / `completion_tokens` (as the LLM server reports)."""

    providers: dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


Update = (TranscriptTurn | StateChanged | BargeIn | ToolActivity | ActionRequested | TurnTiming
          | ProviderFailure | LanguageSwitch | Usage | Ended)
