"""Hearing through a streaming recogniser on virtual time: partials, the vendor's end of turn against the
local silence wait, a stream that fails, and the usage the call reports."""
from __future__ import annotations

import asyncio

import numpy as np
from conversation_fakes import CountingLLM, StreamingFakeSTT
from test_conversation_machine import RATE, Harness, silence, speech, virtual

from agent_runtime.conversation import State
from agent_runtime.providers.base import ProviderError, SttEvent
from agent_runtime.providers.fake import FakeSTT, FakeTTS
from agent_runtime.updates import ProviderFailure, TurnTiming, Usage


def partials(h: Harness) -> list[str]:
    return [e["text"] for e in h.leg.events_of("transcription") if e["role"] == "user" and not e["is_final"]]


@virtual
async def test_the_stream_hears_the_turn_with_partials_and_the_local_end() -> None:
    stt = StreamingFakeSTT("what time is it")
    h = Harness(stt=stt)
    await h.leg.feed(np.concatenate((speech(1.0), silence(0.8))))
    await h.wait_final("agent")
    await h.wait_listening()
    [stream] = stt.streams  # connected at call start, one for the call
    assert stream.rate == RATE and stream.finalized == 1  # the local end asked for the last finals
    assert partials(h) == ["what"]
    assert h.finals("user") == ["what time is it"] and h.finals("agent") == ["You said: what time is it."]
    # Only the caller's turn was sent: the speech and the silence wait (1000 + 500 ms), no more.
    assert 1.45 * RATE <= stream.samples <= 1.8 * RATE
    assert stt.transcribed == 0  # no per-utterance request
    await h.finish()


@virtual
async def test_the_vendors_end_of_turn_beats_the_local_silence_wait() -> None:
    stt = StreamingFakeSTT("book a table")
    stt.answer_finalize = False
    h = Harness(stt=stt)
    loop = asyncio.get_running_loop()
    await h.leg.feed(np.concatenate((speech(1.0), silence(0.2))))
    assert h.conversation.state is State.USER_SPEAKING
    stt.streams[0].push(SttEvent("final", "book a table", speech_final=True))
    await asyncio.sleep(0)
    said = loop.time()
    await h.leg.wait_for(lambda _: h.conversation.state is not State.USER_SPEAKING, 5)
    assert loop.time() - said < 0.05  # not the 300 ms left of the local wait
    await h.leg.feed(silence(1.0))
    await h.wait_final("agent")
    assert h.finals("user") == ["book a table"] and stt.streams[0].finalized == 0
    await h.finish()


@virtual
async def test_a_stream_that_fails_hands_the_turn_to_the_per_utterance_path_and_reconnects() -> None:
    stt = StreamingFakeSTT("still heard")
    stt.answer_finalize = False
    h = Harness(stt=stt)
    await h.leg.feed(speech(0.6))
    stt.streams[0].push(ProviderError("STREAMFAKE: the connection dropped"))
    await h.leg.feed(silence(0.8))
    await h.wait_final("agent")
    assert h.finals("user") == ["still heard"] and stt.transcribed == 1
    await h.wait_listening()
    await h.leg.feed(speech(0.6))
    assert len(stt.streams) == 2  # the next utterance connected again
    await h.finish()
    failures = [u for u in h.taken_updates() if isinstance(u, ProviderFailure)]
    assert [(f.stage, f.provider) for f in failures] == [("stt", "STREAMFAKE")]


@virtual
async def test_a_stream_that_says_nothing_gives_way_to_the_fallback_at_the_stage_timeout() -> None:
    stt = StreamingFakeSTT("late words")
    stt.answer_finalize, stt.partial_after_s = False, None
    h = Harness(stt=stt, stt_fallback=FakeSTT("heard by the fallback"), stage_timeout_ms=3000)
    loop = asyncio.get_running_loop()
    await h.leg.feed(np.concatenate((speech(0.6), silence(0.8))))
    ended = loop.time()
    await h.wait_final("user")
    assert 2.5 < loop.time() - ended < 3.5
    assert h.finals("user") == ["heard by the fallback"] and stt.transcribed == 0  # not waited for twice
    await h.wait_listening()
    await h.leg.feed(speech(0.6))
    assert len(stt.streams) == 2  # a stalled stream is not kept
    await h.finish()


@virtual
async def test_a_stream_that_says_nothing_without_fallback_gets_the_apology() -> None:
    stt = StreamingFakeSTT("late words")
    stt.answer_finalize, stt.partial_after_s = False, None
    local = FakeTTS(frequency=300.0)
    h = Harness(stt=stt, local_tts=local, stage_timeout_ms=3000)
    await h.leg.feed(np.concatenate((speech(0.6), silence(0.8))))
    await h.leg.wait_for(lambda _: bool(local.requests), 10)
    await h.wait_listening()
    assert h.finals("user") == [] and stt.transcribed == 0
    await h.finish()


@virtual
async def test_usage_per_turn_and_per_call() -> None:
    stt, llm = StreamingFakeSTT("what time is it"), CountingLLM()
    h = Harness(stt=stt, llm=llm)
    await h.leg.feed(np.concatenate((speech(1.0), silence(0.8))))
    await h.wait_final("agent")
    await h.wait_listening()
    await h.finish()
    updates = h.taken_updates()
    [timing] = [u for u in updates if isinstance(u, TurnTiming)]
    sent = stt.streams[0].samples / RATE
    assert timing.usage["STREAMFAKE"] == {"stt_audio_s": round(sent, 3)}
    assert timing.usage["FAKE"] == {"prompt_tokens": 20, "completion_tokens": 5,
                                    "tts_characters": len("You said: what time is it.") - 1}
    assert timing.llm_first_token_ms is not None and timing.tts_first_audio_ms is not None
    assert timing.stt_ms is not None and timing.served_by["stt"] == "STREAMFAKE"
    [usage] = [u for u in updates if isinstance(u, Usage)]
    assert usage.providers["STREAMFAKE"]["stt_audio_s"] == sent
    assert usage.providers["FAKE"]["completion_tokens"] == 5
    assert updates.index(usage) == len(updates) - 2  # just before Ended
