"""STT and TTS OPENAI against a local OpenAI-compatible audio API (what self-hosted speech servers copy)."""
from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from vendor_fakes.openai_audio import OpenAIAudioFake

from agent_runtime.providers.base import ProviderError, SpeechToText, TextToSpeech
from agent_runtime.providers.openai_audio import OpenAISTT, OpenAITTS
from agent_runtime.providers.remote import Timeouts

TIMEOUTS = Timeouts(connect=2.0, first_result=2.0)


@pytest_asyncio.fixture
async def audio_api() -> AsyncIterator[OpenAIAudioFake]:
    async with OpenAIAudioFake() as fake:
        yield fake


async def test_transcription_posts_a_wav_with_model_and_language(audio_api: OpenAIAudioFake) -> None:
    stt = OpenAISTT("whisper-large-v3", audio_api.api_url, audio_api.api_key, language="en-US", timeouts=TIMEOUTS)
    assert isinstance(stt, SpeechToText)
    assert await stt.transcribe(np.zeros(16000, dtype=np.int16)) == "check the status of my order"
    request = audio_api.requests[0]
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {audio_api.api_key}"
    assert request.body == {"model": "whisper-large-v3", "response_format": "json", "language": "en"}
    with wave.open(io.BytesIO(request.files["file"]), "rb") as reader:
        assert (reader.getframerate(), reader.getnframes()) == (16000, 16000)


async def test_speech_streams_24k_pcm(audio_api: OpenAIAudioFake) -> None:
    tts = OpenAITTS("alloy", "tts-1", audio_api.api_url, audio_api.api_key, timeouts=TIMEOUTS)
    assert isinstance(tts, TextToSpeech) and tts.sample_rate == 24000
    chunks = [c async for c in tts.synthesize("Hello there.", speed=1.1)]
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == int(len("Hello there.") * 0.06 * 24000)
    assert audio_api.requests[0].body == {"model": "tts-1", "input": "Hello there.", "voice": "alloy",
                                          "response_format": "pcm", "speed": 1.1}


async def test_errors(audio_api: OpenAIAudioFake) -> None:
    audio_api.status = 500
    with pytest.raises(ProviderError, match="HTTP 500"):
        await OpenAISTT("m", audio_api.api_url, audio_api.api_key, timeouts=TIMEOUTS).transcribe(
            np.zeros(160, dtype=np.int16))
    with pytest.raises(ProviderError, match="HTTP 500"):
        [c async for c in OpenAITTS("alloy", "tts-1", audio_api.api_url, audio_api.api_key).synthesize("x")]
