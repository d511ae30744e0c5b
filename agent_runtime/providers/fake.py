"""Provider `FAKE`: instant, deterministic STT, LLM and TTS.

A real, documented option of the server (`talkwire serve --providers fake`): capacity tests and
benchmarks measure Talkwire itself (legs, pacing, turn-taking) without model cost. They implement the
protocols in `base.py` and cost microseconds per call, so they run on the event loop.

- STT `FAKE`/`scripted`: the same transcript at every end of speech (or a list, used in turn).
- LLM `FAKE`/`echo`: "You said: <last user message>." streamed word by word.
- TTS `FAKE`/`tone`: a voiced-sounding tone as long as the text would take to say (60 ms per character
  at speed 1.0, about 150 words per minute), 16 kHz, in 200 ms chunks.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from .base import LLMChunk, TextDelta

DEFAULT_TRANSCRIPT = "hello there"


class FakeSTT:
    """Returns a fixed transcript for any audio; `transcripts` are used in turn, the last one repeating."""

    vendor = "FAKE"
    def __init__(self, transcript: str | Sequence[str] = DEFAULT_TRANSCRIPT, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self._script = [transcript] if isinstance(transcript, str) else list(transcript) or [""]
        self.final_calls = 0
        self.partial_calls = 0
        self.last_audio: np.ndarray | None = None

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        self.last_audio = audio
        index = min(self.final_calls, len(self._script) - 1)
        if not final:
            self.partial_calls += 1
            # A partial is the words the audio so far would hold: a prefix, one word per 0.4 s.
            words = self._script[index].split()
            heard = max(1, int(len(audio) / self.sample_rate / 0.4))
            return " ".join(words[:heard])
        self.final_calls += 1
        return self._script[index]


class FakeLLM:
    """Echoes the last user message. Yields between words so cancellation and interleaving are real."""

    vendor = "FAKE"
    def __init__(self, prefix: str = "You said: ", empty_reply: str = "I am listening.", *,
                 speculative: bool = False) -> None:
        # Instant, so nothing to gain from starting replies at the caller's pause (see base.py); tests of
        # that path ask for it.
        self.speculative = speculative
        self.prefix = prefix
        self.empty_reply = empty_reply
        self.requests: list[dict[str, Any]] = []

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[LLMChunk]:
        self.requests.append({"messages": messages, "tools": tools, "temperature": temperature, "top_p": top_p})
        said = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        said = said.strip().rstrip(".!?")
        reply = f"{self.prefix}{said}." if said else self.empty_reply
        words = reply.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(0)
            yield TextDelta(word if i == 0 else " " + word)


_TONES: dict[tuple[int, float, float], np.ndarray] = {}  # FakeTTS waveforms by (rate, frequency, amplitude)


class FakeTTS:
    """A 16 kHz tone with a syllable-rate envelope, of the length speaking the text would take."""

    vendor = "FAKE"
    MS_PER_CHAR = 60.0
    CHUNK_MS = 200

    def __init__(self, sample_rate: int = 16000, frequency: float = 180.0, level_dbfs: float = -14.0) -> None:
        self.sample_rate = sample_rate
        self.frequency = frequency
        self.amplitude = 32767 * 10 ** (level_dbfs / 20)
        self.requests: list[tuple[str, float | None]] = []

    def duration(self, text: str, speed: float | None = None) -> float:
        """Seconds the fake voice takes to say `text` (speed 2.0 = twice as fast)."""
        return len(text.strip()) * self.MS_PER_CHAR / 1000 / (speed or 1.0)

    def render(self, text: str, speed: float | None = None) -> np.ndarray:
        n = int(round(self.duration(text, speed) * self.sample_rate))
        audio = self._voice(n)[:n].copy()
        ramp = min(n // 2, self.sample_rate // 200)  # 5 ms fades: no clicks at sentence edges
        if ramp:
            fade = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
            audio[:ramp] *= fade
            audio[n - ramp:] *= fade[::-1]
        return audio.astype(np.int16)

    def _voice(self, n: int) -> np.ndarray:
        """The unfaded tone, at least `n` samples, shared by every FakeTTS of the same voice and extended
        when a longer sentence comes (so "instant" stays instant with hundreds of calls replying at once)."""
        key = (self.sample_rate, self.frequency, self.amplitude)
        wave = _TONES.get(key)
        if wave is None or len(wave) < n:
            t = np.arange(max(n, 2 * len(wave) if wave is not None else 0), dtype=np.float64) / self.sample_rate
            # Fundamental plus two harmonics, shaped by a 4 Hz "syllable" envelope that never reaches zero.
            tone = (np.sin(2 * np.pi * self.frequency * t) + 0.5 * np.sin(4 * np.pi * self.frequency * t)
                    + 0.25 * np.sin(6 * np.pi * self.frequency * t)) / 1.75
            envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t) ** 2
            wave = _TONES[key] = (tone * envelope * self.amplitude).astype(np.float32)
        return wave

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        self.requests.append((text, speed))
        audio = self.render(text, speed)
        step = self.sample_rate * self.CHUNK_MS // 1000
        for start in range(0, len(audio), step):
            yield audio[start:start + step]
            await asyncio.sleep(0)
