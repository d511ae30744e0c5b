"""A stage's provider guarded by deadlines, with the agent's fallback behind it.

Each wrapper implements the same protocol as what it guards, so hearing, generation and speaking use it as
they would the provider. The primary serves until it fails (a `ProviderError`, or no first result within
its deadline); the failure is reported (`on_failure(stage, error, provider, fallback)`) and the fallback
serves the rest of the turn — for the LLM the rest of the reply, for TTS the rest of the sentence and the
reply's later sentences, for STT the utterance. When the fallback fails too, or there is none, the
`ProviderError` goes to the conversation, which apologises (speaking.py, generation.py, machine.py).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import numpy as np

from agent_runtime.conversation.usage import Meter, vendor_of
from agent_runtime.providers.base import (
    LanguageModel,
    LLMChunk,
    ProviderError,
    SpeechToText,
    TextToSpeech,
)
from media.resample import StreamResampler, resample

FailureSink = Callable[[str, Exception, str, str | None], None]  # stage, error, provider, fallback
P = TypeVar("P")
T = TypeVar("T")
log = logging.getLogger(__name__)


class _Guarded(Generic[P]):
    stage = ""

    def __init__(self, primary: P, fallback: P | None, on_failure: FailureSink, meter: Meter) -> None:
        self.primary = primary
        self.fallback = fallback
        self._on_failure = on_failure
        self.meter = meter
        self.failed_over = False  # the fallback serves (for the rest of this turn: see `new_turn`)

    @property
    def current(self) -> P:
        return self.fallback if self.failed_over and self.fallback is not None else self.primary

    @property
    def providers(self) -> list[P]:
        return [self.primary] if self.fallback is None else [self.primary, self.fallback]

    def new_turn(self) -> None:
        """A new turn starts on the primary again (it may have recovered: a dropped socket reconnects)."""
        self.failed_over = False

    def _fail(self, provider: P, error: ProviderError) -> bool:
        """Report `provider`'s failure; whether a fallback is left to try."""
        can_fail_over = provider is self.primary and self.fallback is not None
        self._on_failure(self.stage, error, vendor_of(provider),
                         vendor_of(self.fallback) if can_fail_over else None)
        if can_fail_over:
            self.failed_over = True
        return can_fail_over


async def _first(iterator: AsyncIterator[T], timeout: float, what: str) -> T:
    try:
        async with asyncio.timeout(timeout):  # no task per chunk, unlike wait_for
            return await anext(iterator)
    except TimeoutError:
        raise ProviderError(f"{what}: nothing within {timeout:g} s") from None


class GuardedSTT(_Guarded[SpeechToText]):
    stage = "stt"

    def __init__(self, primary: SpeechToText, fallback: SpeechToText | None, on_failure: FailureSink,
                 meter: Meter, timeout_s: float) -> None:
        super().__init__(primary, fallback, on_failure, meter)
        self.timeout_s = timeout_s

    @property
    def sample_rate(self) -> int:
        return self.primary.sample_rate

    @property
    def partials(self) -> bool:
        return bool(getattr(self.primary, "partials", True))

    @property
    def speculative(self) -> bool:
        return bool(getattr(self.primary, "speculative", False))

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        provider = self.current
        while True:
            rate = provider.sample_rate
            samples = audio if rate == self.sample_rate else resample(audio, self.sample_rate, rate)
            limit = self.timeout_s + len(audio) / self.sample_rate
            self.meter.add(vendor_of(provider), "stt_audio_s", len(audio) / self.sample_rate)
            try:
                return await asyncio.wait_for(provider.transcribe(samples, final=final), limit)
            except TimeoutError:
                error = ProviderError(f"{vendor_of(provider)} gave no transcript within {limit:.1f} s")
            except ProviderError as exc:
                error = exc
            if not final or not self._fail(provider, error):
                raise error
            assert self.fallback is not None
            provider = self.fallback


class GuardedLLM(_Guarded[LanguageModel]):
    """The reply's first token within the turn's deadline; each later chunk within the stage timeout."""

    stage = "llm"

    def __init__(self, primary: LanguageModel, fallback: LanguageModel | None, on_failure: FailureSink,
                 meter: Meter, stage_timeout_s: float, turn_deadline_s: float) -> None:
        super().__init__(primary, fallback, on_failure, meter)
        self.stage_timeout_s = stage_timeout_s
        self.turn_deadline_s = turn_deadline_s

    @property
    def speculative(self) -> bool:
        return bool(getattr(self.primary, "speculative", False))

    async def stream(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                     temperature: float | None = None, top_p: float | None = None) -> AsyncGenerator[LLMChunk, None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.turn_deadline_s
        provider, said = self.current, ""
        while True:
            # The primary gets the whole deadline when nothing stands behind it, else its stage timeout.
            has_next = provider is self.primary and self.fallback is not None
            first_limit = deadline - loop.time()
            if has_next:
                first_limit = min(first_limit, self.stage_timeout_s)
            request = messages if not said else [*messages, {"role": "assistant", "content": said}]
            stream = provider.stream(request, tools=tools, temperature=temperature, top_p=top_p)
            produced = False
            try:
                while True:
                    limit = self.stage_timeout_s if produced else max(0.0, first_limit)
                    try:
                        chunk = await _first(stream, limit, vendor_of(provider))
                    except StopAsyncIteration:
                        return
                    produced = True
                    if isinstance(chunk, ProviderError):  # pragma: no cover - providers raise, never yield
                        raise chunk
                    said += getattr(chunk, "text", "")
                    yield chunk
            except ProviderError as error:
                if not self._fail(provider, error) or loop.time() >= deadline:
                    raise
                assert self.fallback is not None
                provider = self.fallback
            finally:
                await _close(stream)


class GuardedTTS(_Guarded[TextToSpeech]):
    """A sentence's first audio within the stage timeout. The fallback's audio is resampled to the primary's
    rate (only then: one extra hop on the fallback path), so the speaker sees one rate."""

    stage = "tts"

    def __init__(self, primary: TextToSpeech, fallback: TextToSpeech | None, on_failure: FailureSink,
                 meter: Meter, timeout_s: float) -> None:
        super().__init__(primary, fallback, on_failure, meter)
        self.timeout_s = timeout_s

    @property
    def sample_rate(self) -> int:
        return self.primary.sample_rate

    @sample_rate.setter
    def sample_rate(self, rate: int) -> None:  # the primary's (a voice that can make the leg's own rate)
        self.primary.sample_rate = rate

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        provider = self.current
        sent = 0  # samples of this sentence already yielded (the fallback says it again from the start)
        while True:
            name = vendor_of(provider)
            self.meter.add(name, "tts_characters", len(text))
            resampler = (None if provider.sample_rate == self.sample_rate
                         else StreamResampler(provider.sample_rate, self.sample_rate))
            audio = provider.synthesize(text, speed=speed)
            try:
                while True:
                    try:
                        chunk = await _first(audio, self.timeout_s, name)
                    except StopAsyncIteration:
                        break
                    out = resampler.push(np.asarray(chunk, dtype=np.int16)) if resampler else chunk
                    sent += len(out)
                    yield out
                if resampler is not None:
                    yield resampler.flush()
                return
            except ProviderError as error:
                can_fail_over = self._fail(provider, error)
                if sent or not can_fail_over:  # cut mid-sentence: the fallback serves the next sentences
                    raise
                assert self.fallback is not None
                provider = self.fallback
            finally:
                await _close(audio)


async def _close(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # a provider failing to clean up must not mask the reply
            log.debug("closing a provider stream failed: %s", exc)
