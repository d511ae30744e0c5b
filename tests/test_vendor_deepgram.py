"""STT DEEPGRAM against a local server speaking Deepgram's live WebSocket protocol."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from vendor_fakes.deepgram import DeepgramFake

from agent_runtime.providers.base import (
    ProviderError,
    SpeechToText,
    StreamingSpeechToText,
    SttEvent,
)
from agent_runtime.providers.deepgram import DeepgramSTT
from agent_runtime.providers.remote import Timeouts


@pytest_asyncio.fixture
async def deepgram() -> AsyncIterator[DeepgramFake]:
    async with DeepgramFake() as fake:
        yield fake


def speech(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)


def make_stt(fake: DeepgramFake, **options: object) -> DeepgramSTT:
    options.setdefault("timeouts", Timeouts(connect=2.0, first_result=2.0))
    return DeepgramSTT("nova-2", fake.api_key, fake.base_url, **options)  # type: ignore[arg-type]


async def test_transcribe_sends_linear16_with_the_documented_query_and_auth(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram, language="en-US")
    assert isinstance(stt, SpeechToText) and isinstance(stt, StreamingSpeechToText)
    audio = speech(1.0, 16000)
    assert await stt.transcribe(audio) == "check the status of my order"
    session = deepgram.sessions[0]
    assert session.headers["Authorization"] == f"Token {deepgram.api_key}"
    assert session.query == {"model": "nova-2", "encoding": "linear16", "sample_rate": "16000", "channels": "1",
                             "interim_results": "true", "endpointing": "300", "utterance_end_ms": "1000",
                             "smart_format": "true", "language": "en-US"}
    assert bytes(session.audio) == audio.astype("<i2").tobytes()
    assert session.messages == ["CloseStream"] and session.closed_by_client
    # the next utterance's stream was connected ahead, and is used
    deepgram.transcripts = ["first", "second"]
    deepgram.finals_sent = 0
    assert len(deepgram.sessions) == 2
    assert await stt.transcribe(audio) == "first"
    assert len(deepgram.sessions[1].audio) == len(audio) * 2 and deepgram.sessions[1].messages == ["CloseStream"]
    await stt.aclose()  # the third, spare stream is closed the documented way
    assert deepgram.sessions[2].messages == ["CloseStream"] and not deepgram.sessions[2].audio
    assert stt.audio_seconds == pytest.approx(2.0)


async def test_the_stream_waiting_for_the_next_utterance_is_kept_alive(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram, keepalive_s=0.2)
    await stt.transcribe(speech(0.2, 16000))
    await asyncio.sleep(0.7)
    assert await stt.transcribe(speech(0.2, 16000)) == "check the status of my order"
    await stt.aclose()
    messages = deepgram.sessions[1].messages
    assert messages[-1] == "CloseStream" and messages.count("KeepAlive") >= 2
    assert set(messages[:-1]) == {"KeepAlive"}


async def test_streaming_events_at_the_legs_rate(deepgram: DeepgramFake) -> None:
    deepgram.language = "hi"
    deepgram.transcripts = ["मेरा ऑर्डर कहाँ है"]
    stt = make_stt(deepgram)
    stream = await stt.open(8000, "hi")
    for frame in np.split(speech(0.4, 8000), 20):  # 20 ms SIP frames
        stream.send(frame)
    stream.finalize()
    events: list[SttEvent] = []
    async for event in stream.events():
        events.append(event)
        if event.kind == "utterance_end":
            break
    await stream.close()
    assert events[0].kind == "partial" and events[0].text == "मेरा"
    final = next(e for e in events if e.kind == "final")
    assert (final.text, final.language, final.speech_final, final.from_finalize) == (
        "मेरा ऑर्डर कहाँ है", "hi", True, True)
    session = deepgram.sessions[0]
    assert session.query["sample_rate"] == "8000" and session.query["language"] == "hi"
    assert len(session.audio) == 0.4 * 8000 * 2
    assert session.messages == ["Finalize", "CloseStream"]
    assert stream.audio_seconds == pytest.approx(0.4)


async def test_wrong_key_is_a_provider_error(deepgram: DeepgramFake) -> None:
    stt = DeepgramSTT("nova-3", "wrong", deepgram.base_url, timeouts=Timeouts(2.0, 2.0))
    with pytest.raises(ProviderError, match="HTTP 401"):
        await stt.transcribe(speech(0.2, 16000))


async def test_refused_connection_fails_within_the_connect_timeout() -> None:
    fake = await DeepgramFake().start()
    url = fake.base_url
    await fake.stop()
    stt = DeepgramSTT("nova-2", "k", url, timeouts=Timeouts(1.0, 1.0))
    started = time.monotonic()
    with pytest.raises(ProviderError, match="cannot connect"):
        await stt.transcribe(speech(0.2, 16000))
    assert time.monotonic() - started < 2.5


async def test_dropped_socket_mid_utterance_then_the_next_utterance_reconnects(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram)
    deepgram.drop_after_bytes = 1000
    with pytest.raises(ProviderError, match="dropped|closed"):
        await stt.transcribe(speech(0.5, 16000))
    assert await stt.transcribe(speech(0.5, 16000)) == "check the status of my order"
    assert len(deepgram.sessions[1].audio) == 0.5 * 16000 * 2
    await stt.aclose()


async def test_stalled_server_fails_within_the_first_result_timeout(deepgram: DeepgramFake) -> None:
    deepgram.stall = True
    stt = make_stt(deepgram, timeouts=Timeouts(connect=1.0, first_result=0.5))
    started = time.monotonic()
    with pytest.raises(ProviderError, match="no final transcript"):
        await stt.transcribe(speech(0.2, 16000))
    assert time.monotonic() - started < 2.0
    deepgram.stall = False
    assert await stt.transcribe(speech(0.2, 16000)) == "check the status of my order"
    await stt.aclose()


async def test_a_language_switch_reconnects_and_the_detected_language_is_kept(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram, language="en-US")
    await stt.transcribe(speech(0.2, 16000))
    stt.language = "hi"  # the conversation pivots to Hindi
    deepgram.language = "hi"
    deepgram.transcripts = ["हाँ जी"]
    deepgram.finals_sent = 0
    assert await stt.transcribe(speech(0.2, 16000)) == "हाँ जी"
    assert stt.detected_language == "hi"
    used = [s for s in deepgram.sessions if s.audio]
    assert [s.query["language"] for s in used] == ["en-US", "hi"]
    await stt.aclose()


async def test_an_unused_stream_connected_ahead_is_closed_after_its_idle_limit(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram, keepalive_s=0.1, spare_idle_s=0.3)
    await stt.transcribe(speech(0.2, 16000))  # a call that ends without closing its STT
    await asyncio.sleep(0.8)
    assert deepgram.sessions[1].messages[-1] == "CloseStream" and deepgram.sessions[1].closed_by_client
    assert await stt.transcribe(speech(0.2, 16000)) == "check the status of my order"  # reconnects


async def test_a_stream_that_drops_or_speaks_garbage_raises_from_its_events(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram)
    deepgram.drop_after_bytes = 640
    stream = await stt.open(8000)
    stream.send(speech(0.1, 8000))
    with pytest.raises(ProviderError, match="dropped"):
        async for _event in stream.events():
            pass
    assert stream.closed
    stream.send(speech(0.1, 8000))  # never raises, even on a dead stream
    await stream.close()

    deepgram.garbage = True
    stream = await stt.open(8000)
    stream.send(speech(0.1, 8000))
    with pytest.raises(ProviderError, match="unexpected message"):
        async for _event in stream.events():
            pass
    await stream.close()
    deepgram.reject_status = 503
    with pytest.raises(ProviderError, match="HTTP 503"):
        await stt.open(8000)


async def test_warm_connects_the_first_utterances_stream_ahead(deepgram: DeepgramFake) -> None:
    stt = make_stt(deepgram)
    await stt.warm()
    await asyncio.sleep(0.2)
    assert len(deepgram.sessions) == 1 and not deepgram.sessions[0].audio
    assert await stt.transcribe(speech(0.2, 16000)) == "check the status of my order"
    assert len(deepgram.sessions[0].audio) == 0.2 * 16000 * 2
    await stt.aclose()
