"""The four provider protocols and the registry that names them.

Providers are registered under the (provider, model-or-voice) names that the discovery endpoints list
and that agents choose with their seed fields: `model: {provider, model}`, `voice: {provider, name}`,
`transcription: {provider, model}`. Inference never runs on the event loop: implementations hand CPU
work to a thread or a worker process and stay awaitable.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np


class ProviderError(Exception):
    """A provider failed (unreachable endpoint, model crash). The conversation recovers from it."""


# ---- speech to text -------------------------------------------------------------------------------

@runtime_checkable
class SpeechToText(Protocol):
    sample_rate: int  # rate of the audio it takes (16000 for Whisper)
    # Optional `partials: bool` (absent: True): whether the conversation should ask for partial transcripts
    # while the caller speaks. A provider whose every call takes the whole CPU (local Whisper) says False:
    # a partial in progress at the end of the turn delays the final transcript.
    # Optional `speculative: bool` (absent: False): whether a transcription takes long enough that starting
    # it at the caller's pause, before the turn has ended, pays (local Whisper: ~0.5 s). For an instant
    # provider it would only be work done twice whenever the caller goes on talking.

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        """Text of an utterance (int16 mono at `sample_rate`). final=False asks for a quick partial."""
        ...


# ---- language model -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: dict[str, Any]


LLMChunk = TextDelta | ToolCallRequest


# A LanguageModel may declare `speculative = True` (absent: False): the conversation may then start a reply
# at the caller's pause and drop it when they go on talking, i.e. some requests are wasted. Local models
# say True (wasted CPU only, and their first token is slow enough to gain from it); a paid API should not,
# nor an instant one (FAKE), which would gain nothing.
@runtime_checkable
class LanguageModel(Protocol):
    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[LLMChunk]:
        """Stream a reply to OpenAI-format `messages`; `tools` are OpenAI function definitions.

        Yields TextDelta pieces as they come and one ToolCallRequest per complete tool call.
        Cancelling the iteration stops generation.
        """
        ...


# ---- text to speech -------------------------------------------------------------------------------

@runtime_checkable
class TextToSpeech(Protocol):
    sample_rate: int  # rate of the audio it yields

    def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        """Yield int16 mono chunks of `text` spoken at `sample_rate`, the first as soon as it exists."""
        ...


# ---- voice activity -------------------------------------------------------------------------------

@runtime_checkable
class VoiceActivityDetector(Protocol):
    sample_rate: int  # rate of the frames it takes

    def is_speech(self, frame: np.ndarray) -> bool:
        """Whether one 20 ms int16 frame at `sample_rate` holds speech. Cheap: called on the loop."""
        ...


# ---- registry -------------------------------------------------------------------------------------

Kind = Literal["llm", "tts", "stt"]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One choosable provider/model (or voice), as discovery lists it."""

    kind: Kind
    provider: str  # "WHISPER", "PIPER", "ESPEAK", "OPENAI", "LOCAL", "FAKE", ...
    name: str  # model name, or voice name for TTS
    language: str | None = None  # voices: "ENGLISH", ...
    gender: str | None = None  # voices: "MALE" | "FEMALE"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProviderRegistry:
    """What is installed and configured here: catalog entries plus a factory per (kind, provider)."""

    entries: list[CatalogEntry] = field(default_factory=list)
    factories: dict[tuple[Kind, str], Callable[[str], Any]] = field(default_factory=dict)
    defaults: dict[Kind, tuple[str, str]] = field(default_factory=dict)  # kind -> (provider, name)

    def add(self, entry: CatalogEntry) -> None:
        self.entries.append(entry)

    def register(self, kind: Kind, provider: str, factory: Callable[[str], Any]) -> None:
        """`factory(name)` returns a ready provider instance for that model/voice name."""
        self.factories[(kind, provider)] = factory

    def catalog(self, kind: Kind) -> list[CatalogEntry]:
        return [e for e in self.entries if e.kind == kind]

    def has(self, kind: Kind, provider: str, name: str) -> bool:
        return any(e.kind == kind and e.provider == provider and e.name == name for e in self.entries)

    def create(self, kind: Kind, provider: str | None = None, name: str | None = None) -> Any:
        """A provider instance for (provider, name), or the default for `kind` when both are None."""
        if provider is None and name is None:
            provider, name = self.defaults[kind]
        if not self.has(kind, provider, name):
            raise ProviderError(f"no {kind} provider {provider}/{name} is configured")
        return self.factories[(kind, provider)](name)
