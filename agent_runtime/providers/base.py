"""The four provider protocols and the registry that names them.

Providers are registered under the (provider, model-or-voice) names that the discovery endpoints list
and that agents choose with their seed fields: `model: {provider, model}`, `voice: {provider, name}`,
`transcription: {provider, model}`. Inference never runs on the event loop: implementations hand CPU
work to a thread or a worker process and stay awaitable.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, overload, runtime_checkable

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

    # Optional `language: str | None` (settable): the language the caller speaks ("en-US", "hi-IN"; None:
    # the provider's default or its own detection). Optional `detected_language: str | None`: the language
    # the provider reported for the last final transcript, where it reports one.

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        """Text of an utterance (int16 mono at `sample_rate`). final=False asks for a quick partial."""
        ...


SttEventKind = Literal["partial", "final", "utterance_end"]


@dataclass(frozen=True, slots=True)
class SttEvent:
    """What a streaming recogniser says about the audio sent so far.

    `partial`: an interim hypothesis that later events may revise. `final`: text that will not change (a
    stream gives several finals per utterance: join them). `speech_final` on a final: the vendor's
    endpointing heard the caller stop (a hint for the turn decision, not a command). `utterance_end`:
    the vendor saw a gap after the last word (no text). `from_finalize`: the final answers a `finalize()`.
    `language`: the language the vendor detected for this text, where it reports one.
    """

    kind: SttEventKind
    text: str = ""
    speech_final: bool = False
    from_finalize: bool = False
    language: str | None = None


@runtime_checkable
class SttStream(Protocol):
    """One open recognition stream (e.g. a WebSocket) for one leg, audio in, events out."""

    def send(self, samples: np.ndarray) -> None:
        """Queue int16 mono samples at the stream's rate; never blocks, never raises (a failure shows in
        the events)."""
        ...

    def finalize(self) -> None:
        """Ask for final results for all audio sent so far (the caller's turn ended)."""
        ...

    def events(self) -> AsyncIterator[SttEvent]:
        """The recogniser's events in order; raises ProviderError when the stream fails, ends after close()."""
        ...

    async def close(self) -> None:
        """Flush, end the stream the vendor's way and release the connection."""
        ...


@runtime_checkable
class StreamingSpeechToText(Protocol):
    """A recogniser that takes audio as it comes (Deepgram's WebSocket) rather than per utterance."""

    async def open(self, sample_rate: int, language: str | None = None) -> SttStream:
        """Connect a stream for audio at `sample_rate` (the leg's own rate where the vendor takes it)."""
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
    # Optional `sample_rates: tuple[int, ...]`: rates the provider can produce natively; the conversation may
    # set `sample_rate` to the leg's rate when it is one of them (no resampling hop). Optional `language`
    # (settable, "hi-IN"): the language to speak, for providers that take one.

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
Provider = SpeechToText | LanguageModel | TextToSpeech  # what a registered factory makes, by its kind


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
    factories: dict[tuple[Kind, str], Callable[[str], Provider]] = field(default_factory=dict)
    defaults: dict[Kind, tuple[str, str]] = field(default_factory=dict)  # kind -> (provider, name)

    def add(self, entry: CatalogEntry) -> None:
        self.entries.append(entry)

    @overload
    def register(self, kind: Literal["stt"], provider: str, factory: Callable[[str], SpeechToText]) -> None: ...
    @overload
    def register(self, kind: Literal["llm"], provider: str, factory: Callable[[str], LanguageModel]) -> None: ...
    @overload
    def register(self, kind: Literal["tts"], provider: str, factory: Callable[[str], TextToSpeech]) -> None: ...

    def register(self, kind: Kind, provider: str, factory: Callable[[str], Provider]) -> None:
        """`factory(name)` returns a ready provider instance of that kind for that model/voice name."""
        self.factories[(kind, provider)] = factory

    def catalog(self, kind: Kind) -> list[CatalogEntry]:
        return [e for e in self.entries if e.kind == kind]

    def has(self, kind: Kind, provider: str, name: str) -> bool:
        return any(e.kind == kind and e.provider == provider and e.name == name for e in self.entries)

    @overload
    def create(self, kind: Literal["stt"], provider: str | None = None, name: str | None = None) -> SpeechToText: ...
    @overload
    def create(self, kind: Literal["llm"], provider: str | None = None, name: str | None = None) -> LanguageModel: ...
    @overload
    def create(self, kind: Literal["tts"], provider: str | None = None, name: str | None = None) -> TextToSpeech: ...
    @overload
    def create(self, kind: Kind, provider: str | None = None, name: str | None = None) -> Provider: ...

    def create(self, kind: Kind, provider: str | None = None, name: str | None = None) -> Provider:
        """A provider instance for (provider, name), or the default for `kind` when both are None."""
        if provider is None and name is None:
            provider, name = self.defaults[kind]
        if provider is None or name is None or not self.has(kind, provider, name):
            raise ProviderError(f"no {kind} provider {provider}/{name} is configured")
        return self.factories[(kind, provider)](name)
