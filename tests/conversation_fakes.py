"""Providers for conversation tests that fail on demand, and a scripted streaming recogniser."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from agent_runtime.providers.base import LLMChunk, ProviderError, SttEvent, TextDelta
from agent_runtime.providers.fake import FakeLLM, FakeTTS


class BrokenLLM:
    """Fails every request (`stall`: never answers instead)."""

    vendor = "BROKEN"

    def __init__(self, *, stall: bool = False, failures: int = 1_000_000) -> None:
        self.stall = stall
        self.failures = failures  # the first `failures` requests fail, later ones echo
        self.requests = 0
        self._echo = FakeLLM()

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[LLMChunk]:
        self.requests += 1
        if self.requests > self.failures:
            async for chunk in self._echo.stream(messages, **kwargs):
                yield chunk
            return
        if self.stall:
            await asyncio.sleep(3600)
        raise ProviderError("BROKEN: HTTP 500")
        yield TextDelta("")  # pragma: no cover - makes this an async generator


class CountingLLM(FakeLLM):
    """FAKE echo that reports token usage the way OpenAI-compatible servers do."""

    def __init__(self, prefix: str = "You said: ") -> None:
        super().__init__(prefix)
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[LLMChunk]:
        async for chunk in super().stream(messages, **kwargs):
            yield chunk
        self.usage["prompt_tokens"] += 20
        self.usage["completion_tokens"] += 5


class BrokenTTS(FakeTTS):
    vendor = "BROKEN"

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        self.requests.append((text, speed))
        raise ProviderError("BROKEN voice: HTTP 429")
        yield np.zeros(0, dtype=np.int16)  # pragma: no cover


class LanguageTTS(FakeTTS):
    """A FAKE voice that takes a language, as the cloud voices do."""

    language: str | None = None


class ScriptedStream:
    """One stream of `StreamingFakeSTT`: a partial once `partial_after_s` of audio came, a final on finalize()."""

    def __init__(self, owner: StreamingFakeSTT, rate: int, language: str | None) -> None:
        self.owner = owner
        self.rate = rate
        self.language = language
        self.samples = 0
        self.finalized = 0
        self.queue: asyncio.Queue[SttEvent | ProviderError | None] = asyncio.Queue()
        self._partial_sent = False

    def send(self, samples: np.ndarray) -> None:
        self.samples += len(samples)
        after = self.owner.partial_after_s
        if after is not None and not self._partial_sent and self.samples >= after * self.rate:
            self._partial_sent = True
            self.queue.put_nowait(SttEvent("partial", self.owner.transcript.split()[0]))

    def finalize(self) -> None:
        self.finalized += 1
        if self.owner.answer_finalize:
            self.push(SttEvent("final", self.owner.transcript, speech_final=True, from_finalize=True,
                               language=self.owner.reported_language))

    def push(self, event: SttEvent | ProviderError) -> None:
        self._partial_sent = False
        self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[SttEvent]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, ProviderError):
                raise item
            yield item

    async def close(self) -> None:
        self.queue.put_nowait(None)


class StreamingFakeSTT:
    """A `StreamingSpeechToText` whose streams the test drives; `transcribe` for the per-utterance path."""

    vendor = "STREAMFAKE"
    sample_rate = 16000
    partials = False
    speculative = False

    def __init__(self, transcript: str = "hello there", *, reported_language: str | None = None) -> None:
        self.transcript = transcript
        self.reported_language = reported_language
        self.answer_finalize = True
        self.partial_after_s: float | None = 0.3  # None: no interim results
        self.language: str | None = None
        self.streams: list[ScriptedStream] = []
        self.transcribed = 0

    async def open(self, sample_rate: int, language: str | None = None) -> ScriptedStream:
        stream = ScriptedStream(self, sample_rate, language)
        self.streams.append(stream)
        return stream

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        self.transcribed += 1
        return self.transcript
