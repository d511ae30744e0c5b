"""STT and TTS SARVAM against a local server speaking Sarvam AI's REST speech APIs."""
from __future__ import annotations

import io
import time
import wave
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from vendor_fakes.sarvam import SarvamFake

from agent_runtime.providers.base import ProviderError, SpeechToText, TextToSpeech
from agent_runtime.providers.remote import Timeouts
from agent_runtime.providers.sarvam import SarvamSTT, SarvamTTS

TIMEOUTS = Timeouts(connect=2.0, first_result=2.0)


@pytest_asyncio.fixture
async def sarvam() -> AsyncIterator[SarvamFake]:
    async with SarvamFake() as fake:
        yield fake


def utterance() -> np.ndarray:
    return (np.sin(np.arange(8000) / 5) * 5000).astype(np.int16)


async def test_stt_uploads_a_16k_wav_with_model_and_language(sarvam: SarvamFake) -> None:
    stt = SarvamSTT("saaras:v3", sarvam.api_key, sarvam.base_url, language="hi", timeouts=TIMEOUTS)
    assert isinstance(stt, SpeechToText)
    assert await stt.transcribe(utterance()) == "मेरा ऑर्डर कहाँ है"
    assert stt.detected_language == "hi-IN"
    request = sarvam.requests[0]
    assert request.path == "/speech-to-text" and request.headers["api-subscription-key"] == sarvam.api_key
    assert request.body == {"model": "saaras:v3", "language_code": "hi-IN", "mode": "transcribe"}
    with wave.open(io.BytesIO(request.files["file"]), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth(), reader.getnframes()) == (
            16000, 1, 2, 8000)


async def test_stt_detects_when_no_language_and_saaras_v2_translates(sarvam: SarvamFake) -> None:
    await SarvamSTT("saarika:v2.5", sarvam.api_key, sarvam.base_url, timeouts=TIMEOUTS).transcribe(utterance())
    assert sarvam.requests[0].body == {"model": "saarika:v2.5", "language_code": "unknown"}
    stt = SarvamSTT("saaras:v2", sarvam.api_key, sarvam.base_url, timeouts=TIMEOUTS)
    assert await stt.transcribe(utterance()) == "where is my order"
    assert sarvam.requests[1].path == "/speech-to-text-translate"
    assert sarvam.requests[1].body == {"model": "saaras:v2"}


async def test_tts_speaks_the_target_language_at_the_asked_rate(sarvam: SarvamFake) -> None:
    tts = SarvamTTS("anushka", sarvam.api_key, sarvam.base_url, language="hi-IN", timeouts=TIMEOUTS)
    assert isinstance(tts, TextToSpeech)
    tts.sample_rate = 8000
    chunks = [c async for c in tts.synthesize("नमस्ते जी", speed=1.25)]
    assert sum(len(c) for c in chunks) == int(len("नमस्ते जी") * 0.06 * 8000)
    request = sarvam.requests[0]
    assert request.headers["api-subscription-key"] == sarvam.api_key
    assert request.body == {"text": "नमस्ते जी", "target_language_code": "hi-IN", "speaker": "anushka",
                            "model": "bulbul:v2", "speech_sample_rate": 8000, "pace": 1.25}


async def test_errors_stalls_and_refusals_are_provider_errors(sarvam: SarvamFake) -> None:
    stt = SarvamSTT("saaras:v3", sarvam.api_key, sarvam.base_url, timeouts=Timeouts(1.0, 0.5))
    tts = SarvamTTS("karun", sarvam.api_key, sarvam.base_url, timeouts=Timeouts(1.0, 0.5))
    for status in (429, 500):
        sarvam.status = status
        with pytest.raises(ProviderError, match=f"HTTP {status}.*scripted failure"):
            await stt.transcribe(utterance())
        with pytest.raises(ProviderError, match=f"HTTP {status}"):
            [c async for c in tts.synthesize("hi")]
    sarvam.status = 200
    sarvam.stall_s = 2.0
    started = time.monotonic()
    with pytest.raises(ProviderError):
        await stt.transcribe(utterance())
    assert time.monotonic() - started < 1.5
    sarvam.stall_s = 0
    with pytest.raises(ProviderError, match="HTTP 403"):
        await SarvamSTT("saaras:v3", "wrong", sarvam.base_url, timeouts=TIMEOUTS).transcribe(utterance())
    url = sarvam.base_url
    await sarvam.stop()
    with pytest.raises(ProviderError):
        await SarvamSTT("saaras:v3", "k", url, timeouts=TIMEOUTS).transcribe(utterance())
