"""The events the conversation's loop handles, one at a time, in the order they were posted.

    leg consumer (hearing) ─► SpeechStart / SpeechEnd / Partial / Transcript / SttFailed / SpeculationDone
    speaking                ─► AudioStarted / PlaybackDone
    leg.events              ─► Message
    silence timers          ─► Silence
    leg.ended, a crash      ─► LegEnded
    public API              ─► SwitchAgent, Callback
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.reply import Reply
from agent_runtime.conversation.speculation import Speculation
from agent_runtime.providers.base import ProviderError


@dataclass(slots=True)
class SpeechStart:
    at: float


@dataclass(slots=True)
class SpeechEnd:
    audio: np.ndarray  # at the STT rate
    at: float


@dataclass(slots=True)
class Partial:
    text: str
    utterance: int


@dataclass(slots=True)
class Transcript:
    text: str
    utterance: int
    speech_end_at: float
    stt_ms: float  # end of speech decided → this transcript
    stt_run_ms: float | None = None  # the STT call that produced it (queueing included)
    speculative: bool = False  # it was started at the caller's pause, before the end of speech
    held: Reply | None = None  # the reply already started on it, its audio held (see hearing.Speculation)


@dataclass(slots=True)
class SttFailed:
    error: ProviderError
    utterance: int


@dataclass(slots=True)
class SpeculationDone:
    speculation: Speculation


@dataclass(slots=True)
class AudioStarted:
    reply: Reply


@dataclass(slots=True)
class PlaybackDone:
    reply: Reply


@dataclass(slots=True)
class Message:
    message: object  # what the client sent (normally a dict; anything else gets an error back)


@dataclass(slots=True)
class Silence:
    stretch: int
    hang_up: bool


@dataclass(slots=True)
class LegEnded:
    reason: str


@dataclass(slots=True)
class SwitchAgent:
    config: AgentConfig


@dataclass(slots=True)
class Callback:
    fn: Callable[[], Awaitable[None]]


Event = (SpeechStart | SpeechEnd | Partial | Transcript | SttFailed | SpeculationDone | AudioStarted
         | PlaybackDone | Message | Silence | LegEnded | SwitchAgent | Callback)
