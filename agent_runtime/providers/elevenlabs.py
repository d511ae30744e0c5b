"""TTS `ELEVENLABS`: voices by name, streamed synthesis as raw PCM.

Protocol (sources in docs/providers.md): `GET {base}/v1/voices` lists the account's voices
(`{"voices": [{"voice_id", "name", "labels": {"gender", "language", "accent", ...}}]}`);
`POST {base}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>` with the JSON body
`{"text", "model_id", "voice_settings"?, "language_code"?}` answers with the audio as it is made: raw
little-endian 16-bit mono PCM at that rate. Both authenticate with the `xi-api-key` header.

Voices are chosen by name (`Riya Rao`); `VoiceDirectory` resolves names to ids through the voices API
once and caches them (a name it does not know makes it ask again, at most once a minute). The output
rate is one of ElevenLabs' PCM rates; the conversation may set `sample_rate` to the leg's rate (8000 for
SIP, 48000 for web) when it is in `sample_rates`, so no resampling hop is needed.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

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
)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"  # low latency, multilingual (Hindi included)
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)  # output_format=pcm_<rate>
REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class Voice:
    voice_id: str
    name: str
    gender: str | None  # "MALE" | "FEMALE"
    language: str | None  # "ENGLISH", "HINDI", ...


def _voice(item: object) -> Voice | None:
    if not isinstance(item, dict) or not item.get("voice_id") or not item.get("name"):
        return None
    found = item.get("labels")
    labels: dict[str, object] = found if isinstance(found, dict) else {}
    gender = str(labels.get("gender") or "").upper() or None
    language = str(labels.get("language") or "").upper() or None
    language = {"EN": "ENGLISH", "HI": "HINDI"}.get(language or "", language)
    return Voice(str(item["voice_id"]), str(item["name"]), gender if gender in ("MALE", "FEMALE") else None,
                 language)


class VoiceDirectory:
    """The account's voices by name, from `GET /v1/voices`, shared by every ElevenLabsTTS of a server."""

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.voices: dict[str, Voice] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> list[Voice]:
        url = self.base_url + "/v1/voices"
        try:
            response = await client().get(url, headers={"xi-api-key": self.api_key}, timeout=self.timeouts.httpx())
        except httpx.HTTPError as exc:
            raise ProviderError(f"ELEVENLABS voices at {url}: {exc!r}") from exc
        self._fetched_at = time.monotonic()
        if response.status_code != 200:
            raise http_error("ELEVENLABS", "voices", response)
        try:
            items = response.json()["voices"]
            voices = [v for v in map(_voice, items) if v is not None]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"ELEVENLABS voices: unexpected answer {response.text[:120]!r}") from exc
        self.voices = {v.name: v for v in voices}
        return voices

    async def voice_id(self, name: str) -> str:
        async with self._lock:
            if name not in self.voices and time.monotonic() - self._fetched_at > REFRESH_S:
                await self.refresh()
        voice = self.voices.get(name)
        if voice is None:
            raise ProviderError(f"ELEVENLABS has no voice named {name!r} in this account")
        return voice.voice_id


class ElevenLabsTTS:
    """`TextToSpeech` over ElevenLabs' streaming endpoint; the first chunk is yielded as soon as it arrives."""

    vendor = "ELEVENLABS"
    sample_rates = SAMPLE_RATES

    def __init__(self, voice: str, directory: VoiceDirectory, *, model_id: str = DEFAULT_MODEL,
                 sample_rate: int = 16000, language: str | None = None, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"ElevenLabs has no PCM output at {sample_rate} Hz")
        self.voice = voice
        self.directory = directory
        self.model_id = model_id
        self.sample_rate = sample_rate
        self.language = language
        self.timeouts = timeouts
        self.characters = 0  # usage: characters sent

    def _body(self, text: str, speed: float | None) -> dict[str, object]:
        body: dict[str, object] = {"text": text, "model_id": self.model_id}
        if speed is not None:
            body["voice_settings"] = {"speed": min(1.2, max(0.7, speed))}  # the range the API takes
        language = base_language(self.language)
        if language:
            body["language_code"] = language
        return body

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        rate = self.sample_rate if self.sample_rate in SAMPLE_RATES else 16000
        voice_id = await self.directory.voice_id(self.voice)
        url = f"{self.directory.base_url}/v1/text-to-speech/{voice_id}/stream"
        headers = {"xi-api-key": self.directory.api_key, "Accept": "audio/pcm, application/octet-stream"}
        self.characters += len(text)
        async with aclosing(stream_pcm("ELEVENLABS", url, params={"output_format": f"pcm_{rate}"},
                                       body=self._body(text, speed), headers=headers,
                                       timeouts=self.timeouts)) as chunks:
            async for samples in chunks:
                yield samples
