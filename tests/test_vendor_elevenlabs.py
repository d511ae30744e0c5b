"""TTS ELEVENLABS against a local server speaking ElevenLabs' voices and streaming speech APIs."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from vendor_fakes.elevenlabs import ElevenLabsFake

from agent_runtime.providers.base import ProviderError, TextToSpeech
from agent_runtime.providers.elevenlabs import ElevenLabsTTS, VoiceDirectory
from agent_runtime.providers.remote import Timeouts


@pytest_asyncio.fixture
async def eleven() -> AsyncIterator[ElevenLabsFake]:
    async with ElevenLabsFake() as fake:
        yield fake


def make(fake: ElevenLabsFake, voice: str = "Riya Rao", **options: object) -> ElevenLabsTTS:
    timeouts = Timeouts(connect=2.0, first_result=2.0)
    return ElevenLabsTTS(voice, VoiceDirectory(fake.api_key, fake.base_url, timeouts), timeouts=timeouts,
                         **options)  # type: ignore[arg-type]


async def collect(tts: ElevenLabsTTS, text: str, **kwargs: object) -> list[np.ndarray]:
    return [chunk async for chunk in tts.synthesize(text, **kwargs)]  # type: ignore[arg-type]


async def test_voice_by_name_streams_pcm_at_the_asked_rate(eleven: ElevenLabsFake) -> None:
    tts = make(eleven)
    assert isinstance(tts, TextToSpeech)
    chunks = await collect(tts, "Hello there.")
    assert len(chunks) > 3 and all(c.dtype == np.int16 for c in chunks)
    assert sum(len(c) for c in chunks) == int(len("Hello there.") * 0.06 * 16000)
    voices, speech = eleven.requests
    assert voices.path == "/v1/voices" and voices.headers["xi-api-key"] == eleven.api_key
    assert speech.path == "/v1/text-to-speech/riya0000000000000001/stream"
    assert speech.query == {"output_format": "pcm_16000"}
    assert speech.headers["xi-api-key"] == eleven.api_key
    assert speech.body == {"text": "Hello there.", "model_id": "eleven_flash_v2_5"}
    assert tts.characters == len("Hello there.")


async def test_sip_rate_speed_language_and_the_voice_cache(eleven: ElevenLabsFake) -> None:
    tts = make(eleven, "Samay Hinglish Super Premium", language="hi-IN")
    tts.sample_rate = 8000  # the conversation picks the leg's rate when the vendor has it
    chunks = await collect(tts, "नमस्ते", speed=1.5)
    assert sum(len(c) for c in chunks) == int(len("नमस्ते") * 0.06 * 8000)
    await collect(tts, "again")
    assert [r.path for r in eleven.requests].count("/v1/voices") == 1
    speech = eleven.requests[1]
    assert speech.query == {"output_format": "pcm_8000"}
    assert speech.body["voice_settings"] == {"speed": 1.2} and speech.body["language_code"] == "hi"


async def test_unknown_voice_and_http_errors_are_provider_errors(eleven: ElevenLabsFake) -> None:
    with pytest.raises(ProviderError, match="no voice named"):
        await collect(make(eleven, "Nobody"), "hi")
    eleven.status = 429
    with pytest.raises(ProviderError, match="HTTP 429.*scripted failure"):
        await collect(make(eleven), "hi")
    eleven.status = 500
    with pytest.raises(ProviderError, match="HTTP 500"):
        await collect(make(eleven), "hi")
    eleven.status = 200
    eleven.json_instead = True
    with pytest.raises(ProviderError, match="not audio"):
        await collect(make(eleven), "hi")
    bad_key = ElevenLabsTTS("Riya Rao", VoiceDirectory("wrong", eleven.base_url))
    with pytest.raises(ProviderError, match="HTTP 401"):
        await collect(bad_key, "hi")


async def test_stall_and_refused_connection(eleven: ElevenLabsFake) -> None:
    tts = make(eleven)
    tts.timeouts = Timeouts(connect=1.0, first_result=0.5)
    await tts.directory.refresh()
    eleven.stall_s = 3.0
    started = time.monotonic()
    with pytest.raises(ProviderError):
        await collect(tts, "hi")
    assert time.monotonic() - started < 2.0
    url = eleven.base_url
    await eleven.stop()
    with pytest.raises(ProviderError):
        await VoiceDirectory("k", url, Timeouts(1.0, 1.0)).refresh()
