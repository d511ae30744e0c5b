"""STT and TTS `OPENAI`: any OpenAI-compatible audio API (OpenAI itself, or a self-hosted faster-whisper,
Kokoro or similar server that copies it), so a bigger model on the operator's own GPU box can serve a call.

Protocol (sources in docs/providers.md), `Authorization: Bearer <key>` when a key is set:
- `POST {base}/audio/transcriptions`, multipart: `file` (a WAV), `model`, `language` (ISO 639-1, optional),
  `response_format=json`; the answer is `{"text": ...}` (verbose servers add `language`).
- `POST {base}/audio/speech`, JSON `{"model", "input", "voice", "response_format": "pcm", "speed"}`; the
  answer streams raw 16-bit little-endian mono PCM at 24 kHz.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import numpy as np

from .base import ProviderError
from .pool import client
from .remote import (
    DEFAULT_TIMEOUTS,
    Timeouts,
    base_language,
    http_error,
    stream_pcm,
    wav_bytes,
)

PCM_RATE = 24000  # what response_format=pcm is


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class OpenAISTT:
    """`SpeechToText` over `/audio/transcriptions`: one request per utterance."""

    vendor = "OPENAI"
    partials = False
    speculative = False

    def __init__(self, model: str, base_url: str, api_key: str | None = None, *, language: str | None = None,
                 sample_rate: int = 16000, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.language = language
        self.sample_rate = sample_rate
        self.timeouts = timeouts
        self.detected_language: str | None = None
        self.audio_seconds = 0.0

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        url = self.base_url + "/audio/transcriptions"
        form = {"model": self.model, "response_format": "json"}
        language = base_language(self.language)
        if language:
            form["language"] = language
        self.audio_seconds += len(audio) / self.sample_rate
        files = {"file": ("utterance.wav", wav_bytes(audio, self.sample_rate), "audio/wav")}
        try:
            response = await client().post(url, data=form, files=files, headers=_headers(self.api_key),
                                           timeout=self.timeouts.httpx())
        except httpx.HTTPError as exc:
            raise ProviderError(f"OPENAI transcription at {url}: {exc!r}") from exc
        if response.status_code != 200:
            raise http_error("OPENAI", "transcription", response)
        try:
            body = response.json()
            text = body["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"OPENAI transcription: unexpected answer {response.text[:120]!r}") from exc
        if not isinstance(text, str):
            raise ProviderError(f"OPENAI transcription: unexpected answer {response.text[:120]!r}")
        reported = body.get("language") if isinstance(body, dict) else None
        self.detected_language = reported if isinstance(reported, str) and reported else None
        return text.strip()


class OpenAITTS:
    """`TextToSpeech` over `/audio/speech` as raw PCM, yielded as it streams in."""

    vendor = "OPENAI"
    sample_rate = PCM_RATE

    def __init__(self, voice: str, model: str, base_url: str, api_key: str | None = None, *,
                 timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self.voice = voice
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeouts = timeouts
        self.characters = 0

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        url = self.base_url + "/audio/speech"
        body: dict[str, object] = {"model": self.model, "input": text, "voice": self.voice, "response_format": "pcm"}
        if speed is not None:
            body["speed"] = min(4.0, max(0.25, speed))
        self.characters += len(text)
        async with aclosing(stream_pcm("OPENAI", url, body=body, headers=_headers(self.api_key),
                                       timeouts=self.timeouts)) as chunks:
            async for samples in chunks:
                yield samples
