"""A final transcription started at the caller's pause, before the turn detector decided the end of the turn."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent_runtime.conversation.reply import Reply
from agent_runtime.providers.base import ProviderError

SttResult = tuple[str | ProviderError, float]  # (text, or the provider's error; the STT call's duration in ms)


@dataclass(slots=True)
class Speculation:
    """`samples` is the length of the audio it transcribes: the utterance only grows, so if the turn ends with
    audio of the same length (and the same utterance), it is the very audio the end of turn would hand over.
    The task returns an `SttResult`.

    When it finishes while the caller is still silent, the reply can start too (`reply`, when the LLM
    allows it): the LLM streams and TTS synthesizes as usual, but no audio reaches the leg and no tool
    runs until the turn really ends; if speech resumes instead, the reply and its history are dropped."""

    utterance: int
    samples: int
    task: asyncio.Task[SttResult]
    reply: Reply | None = None
