"""What every cloud provider shares: timeouts, error messages, WAV in and out, PCM bytes to samples.

Every remote call has a connect timeout and a first-result timeout and fails with `ProviderError`, the one
error the conversation recovers from; nothing here blocks the loop for longer than a small copy.
"""
from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import httpx
import numpy as np

from media.wav import pcm16_header

from .base import ProviderError
from .pool import client


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: to open the connection, and for the first result (and every later read) after a request."""

    connect: float = 5.0
    first_result: float = 10.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.first_result, connect=self.connect)


DEFAULT_TIMEOUTS = Timeouts()


def error_detail(response: httpx.Response) -> str:
    """The vendor's own error message when the body carries one (`error.message`, `detail.message`,
    `detail`, `message`), else a short excerpt of the body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error", "detail", "err_msg", "message"):
            value = body.get(key)
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
            if isinstance(value, str) and value:
                return value
    return json.dumps(body)[:200]


def http_error(vendor: str, what: str, response: httpx.Response) -> ProviderError:
    return ProviderError(f"{vendor} {what}: HTTP {response.status_code} {error_detail(response)}")


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A PCM16 mono WAV file of `samples` (int16), as uploads to REST speech-to-text APIs take."""
    data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    return pcm16_header(sample_rate, 1, len(data)) + data


def decode_wav(data: bytes, vendor: str) -> tuple[np.ndarray, int]:
    """int16 mono samples and rate of a PCM16 WAV answer; anything else is the vendor's error."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            if reader.getsampwidth() != 2:
                raise ProviderError(f"{vendor}: WAV audio is not 16-bit PCM")
            rate, channels = reader.getframerate(), reader.getnchannels()
            samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as exc:
        raise ProviderError(f"{vendor}: the audio is not a WAV file ({exc})") from exc
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.int16), rate


class PcmChunker:
    """Turns a byte stream of little-endian int16 PCM into sample arrays, carrying an odd byte over."""

    def __init__(self) -> None:
        self._rest = b""

    def push(self, data: bytes) -> np.ndarray:
        data = self._rest + data
        usable = len(data) - len(data) % 2
        self._rest = data[usable:]
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


async def stream_pcm(vendor: str, url: str, *, body: Mapping[str, object], headers: Mapping[str, str],
                     timeouts: Timeouts, params: Mapping[str, str] | None = None) -> AsyncGenerator[np.ndarray, None]:
    """POST `body` to a speech endpoint whose reply is raw PCM16 and yield its samples as they arrive.
    `ProviderError` on an HTTP error, a non-200 status or a reply that is not audio (JSON or text)."""
    chunker = PcmChunker()
    try:
        async with client().stream("POST", url, params=params, json=body, headers=headers,
                                   timeout=timeouts.httpx()) as response:
            if response.status_code != 200:
                await response.aread()
                raise ProviderError(f"{vendor} speech: HTTP {response.status_code} {error_detail(response)}")
            if response.headers.get("content-type", "").startswith(("application/json", "text/")):
                await response.aread()
                raise ProviderError(f"{vendor} speech: HTTP 200 but not audio: {response.text[:120]!r}")
            async for data in response.aiter_bytes():
                samples = chunker.push(data)
                if len(samples):
                    yield samples
    except httpx.HTTPError as exc:
        raise ProviderError(f"{vendor} speech at {url}: {exc!r}") from exc


def region_language(language: str | None, default: str) -> str:
    """"hi" / "hi-in" / "hi-IN" → "hi-IN" (Indian vendors' BCP-47 codes); None → `default`."""
    if not language:
        return default
    base, _, region = language.replace("_", "-").partition("-")
    return f"{base.lower()}-{(region or 'IN').upper()}"


def base_language(language: str | None) -> str | None:
    """"en-US" → "en": the ISO 639-1 code that OpenAI-style and ElevenLabs APIs take."""
    return language.replace("_", "-").split("-")[0].lower() if language else None
