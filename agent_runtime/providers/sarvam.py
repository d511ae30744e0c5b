"""STT and TTS `SARVAM`: Sarvam AI's REST speech APIs for Indian languages.

Protocol (sources in docs/providers.md); every request carries the `api-subscription-key` header.
- STT `POST {base}/speech-to-text`, multipart: `file` (a WAV), `model` (`saarika:v2.5`, `saaras:v3`),
  `language_code` (BCP-47 such as `hi-IN`, or `unknown` to let the model detect it), and for `saaras:v3`
  `mode=transcribe`; the answer is `{"request_id", "transcript", "language_code", ...}`. `saaras:v2` is a
  speech-to-English model served at `POST {base}/speech-to-text-translate` (same form, no language):
  its transcript is the English translation of what the caller said.
- TTS `POST {base}/text-to-speech`, JSON `{"text", "target_language_code", "speaker", "model",
  "speech_sample_rate", "pace"}`; the answer is `{"request_id", "audios": ["<base64 WAV>", ...]}`.
Both are one request per utterance or sentence: no first audio before the whole sentence is made.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np

from .base import ProviderError
from .pool import client
from .remote import (
    DEFAULT_TIMEOUTS,
    Timeouts,
    decode_wav,
    http_error,
    region_language,
    wav_bytes,
)

DEFAULT_BASE_URL = "https://api.sarvam.ai"
STT_MODELS = ("saarika:v2.5", "saaras:v2", "saaras:v3")
TRANSLATING_MODELS = ("saaras:v2",)  # speech in, English text out
TTS_MODEL = "bulbul:v2"
# bulbul:v2's speakers: name -> gender
TTS_SPEAKERS = {"anushka": "FEMALE", "manisha": "FEMALE", "vidya": "FEMALE", "arya": "FEMALE",
                "abhilash": "MALE", "karun": "MALE", "hitesh": "MALE"}
TTS_SAMPLE_RATES = (8000, 16000, 22050, 24000)
CHUNK_SAMPLES = 3200  # yield TTS audio in 200 ms (16 kHz) pieces, like the other providers


def _headers(api_key: str) -> dict[str, str]:
    return {"api-subscription-key": api_key, "Accept": "application/json"}


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderError(f"SARVAM {what}: HTTP 200 but not JSON: {response.text[:120]!r}") from exc
    if not isinstance(body, dict):
        raise ProviderError(f"SARVAM {what}: unexpected answer {response.text[:120]!r}")
    return body


class SarvamSTT:
    """`SpeechToText` over Sarvam's REST endpoint: one request per utterance, 16 kHz WAV."""

    vendor = "SARVAM"
    partials = False  # a paid request per partial: not worth it
    speculative = False

    def __init__(self, model: str, api_key: str, base_url: str = DEFAULT_BASE_URL, *,
                 language: str | None = None, sample_rate: int = 16000, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.sample_rate = sample_rate
        self.timeouts = timeouts
        self.detected_language: str | None = None
        self.audio_seconds = 0.0  # usage: audio sent

    def _request(self) -> tuple[str, dict[str, str]]:
        if self.model in TRANSLATING_MODELS:
            return self.base_url + "/speech-to-text-translate", {"model": self.model}
        form = {"model": self.model, "language_code": region_language(self.language, "unknown")}
        if self.model.startswith("saaras:v3"):
            form["mode"] = "transcribe"
        return self.base_url + "/speech-to-text", form

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        url, form = self._request()
        files = {"file": ("utterance.wav", wav_bytes(audio, self.sample_rate), "audio/wav")}
        self.audio_seconds += len(audio) / self.sample_rate
        try:
            response = await client().post(url, data=form, files=files, headers=_headers(self.api_key),
                                           timeout=self.timeouts.httpx())
        except httpx.HTTPError as exc:
            raise ProviderError(f"SARVAM speech-to-text at {url}: {exc!r}") from exc
        if response.status_code != 200:
            raise http_error("SARVAM", "speech-to-text", response)
        body = _json(response, "speech-to-text")
        transcript = body.get("transcript")
        if not isinstance(transcript, str):
            raise ProviderError(f"SARVAM speech-to-text: no transcript in {response.text[:120]!r}")
        language = body.get("language_code")
        self.detected_language = language if isinstance(language, str) and language else None
        return transcript.strip()


class SarvamTTS:
    """`TextToSpeech` with a bulbul speaker; `language` ("hi-IN") is the target language (default en-IN)."""

    vendor = "SARVAM"
    sample_rates = TTS_SAMPLE_RATES

    def __init__(self, speaker: str, api_key: str, base_url: str = DEFAULT_BASE_URL, *, model: str = TTS_MODEL,
                 language: str | None = None, sample_rate: int = 16000, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self.speaker = speaker
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.language = language
        self.sample_rate = sample_rate
        self.timeouts = timeouts
        self.characters = 0  # usage: characters sent

    def _body(self, text: str, speed: float | None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "target_language_code": region_language(self.language, "en-IN"),
                                "speaker": self.speaker, "model": self.model,
                                "speech_sample_rate": self.sample_rate if self.sample_rate in TTS_SAMPLE_RATES
                                else 16000}
        if speed is not None:
            body["pace"] = min(3.0, max(0.3, speed))  # bulbul:v2's range
        return body

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        url = self.base_url + "/text-to-speech"
        body = self._body(text, speed)
        self.characters += len(text)
        try:
            response = await client().post(url, json=body, headers=_headers(self.api_key),
                                           timeout=self.timeouts.httpx())
        except httpx.HTTPError as exc:
            raise ProviderError(f"SARVAM text-to-speech at {url}: {exc!r}") from exc
        if response.status_code != 200:
            raise http_error("SARVAM", "text-to-speech", response)
        audios = _json(response, "text-to-speech").get("audios")
        if not isinstance(audios, list) or not audios:
            raise ProviderError(f"SARVAM text-to-speech: no audio in {response.text[:120]!r}")
        for encoded in audios:
            try:
                samples, rate = decode_wav(base64.b64decode(encoded, validate=True), "SARVAM")
            except (binascii.Error, TypeError) as exc:
                raise ProviderError("SARVAM text-to-speech: audio is not base64") from exc
            if rate != body["speech_sample_rate"]:
                raise ProviderError(f"SARVAM text-to-speech: asked for {body['speech_sample_rate']} Hz, got {rate}")
            for start in range(0, len(samples), CHUNK_SAMPLES):
                yield samples[start:start + CHUNK_SAMPLES]
