"""Failure is normal: fallbacks serve the turn, deadlines bound it, and with nothing left the local voice
apologises and the call goes on (virtual time, scripted VAD, in-memory leg)."""
from __future__ import annotations

import asyncio

import numpy as np
from conversation_fakes import BrokenLLM, BrokenTTS
from test_conversation_machine import Harness, silence, speech, virtual

from agent_runtime.providers.base import ProviderError
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.updates import ProviderFailure, TurnTiming

APOLOGY = "Sorry, I had a problem."


def turn() -> np.ndarray:
    return np.concatenate((speech(0.8), silence(0.8)))


@virtual
async def test_the_llm_fallback_serves_the_turn() -> None:
    h = Harness(stt=FakeSTT("are you open"), llm=BrokenLLM(), llm_fallback=FakeLLM("Fallback heard: "))
    await h.leg.feed(turn())
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("agent") == ["Fallback heard: are you open."]
    await h.finish()
    updates = h.taken_updates()
    [failure] = [u for u in updates if isinstance(u, ProviderFailure)]
    assert (failure.stage, failure.provider, failure.fallback) == ("llm", "BROKEN", "FAKE")
    [timing] = [u for u in updates if isinstance(u, TurnTiming)]
    assert timing.served_by == {"stt": "FAKE", "llm": "FAKE", "tts": "FAKE"}


@virtual
async def test_the_voice_fallback_speaks_at_its_own_rate() -> None:
    fallback = FakeTTS(sample_rate=8000)
    h = Harness(tts=BrokenTTS(), tts_fallback=fallback)
    await h.leg.feed(turn())
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("agent") == ["You said: hello there."]
    said = [text for text, _ in fallback.requests]
    assert " ".join(said) == "You said: hello there."
    # Resampled from 8 kHz to the leg's 16 kHz: twice the fallback's samples reached the caller.
    made = sum(fallback.render(text).size for text in said)
    assert abs(h.leg.outbound.played_total - 2 * made) <= 64
    await h.finish()
    [failure] = [u for u in h.taken_updates() if isinstance(u, ProviderFailure)]
    assert (failure.stage, failure.fallback) == ("tts", "FAKE")


@virtual
async def test_with_no_fallback_the_local_voice_apologises_and_the_call_goes_on() -> None:
    local = FakeTTS(frequency=300.0)
    h = Harness(stt=FakeSTT(["first", "second"]), llm=BrokenLLM(failures=1), local_tts=local)
    await h.leg.feed(turn())
    await h.wait_listening()
    await h.leg.wait_for(lambda _: bool(local.requests), 10)
    assert [text for text, _ in local.requests] == [APOLOGY]
    assert h.leg.outbound.played_total == local.render(APOLOGY).size  # the caller heard it
    assert h.conversation.history.items == [{"role": "user", "content": "first"}]  # no empty reply kept
    await h.leg.feed(turn())
    await h.wait_final("agent", 2)
    assert h.finals("agent")[-1] == "You said: second."
    assert await h.finish() == "caller_hangup"
    [failure] = [u for u in h.taken_updates() if isinstance(u, ProviderFailure)]
    assert (failure.stage, failure.provider, failure.fallback) == ("llm", "BROKEN", None)


@virtual
async def test_a_stalled_llm_hits_the_turn_deadline() -> None:
    local = FakeTTS(frequency=300.0)
    h = Harness(llm=BrokenLLM(stall=True), local_tts=local, turn_deadline_ms=15000)
    loop = asyncio.get_running_loop()
    await h.leg.feed(turn())
    asked = loop.time()
    await h.leg.wait_for(lambda _: bool(local.requests), 60)
    assert 14.5 < loop.time() - asked < 15.5  # the turn's deadline, not the endpoint's 30 s read timeout
    await h.wait_listening()
    await h.finish()
    [failure] = [u for u in h.taken_updates() if isinstance(u, ProviderFailure)]
    assert "within 15 s" in failure.message


@virtual
async def test_a_stalled_primary_gives_way_to_its_fallback_at_the_stage_timeout() -> None:
    h = Harness(llm=BrokenLLM(stall=True), llm_fallback=FakeLLM("Fallback: "), stage_timeout_ms=2000)
    loop = asyncio.get_running_loop()
    await h.leg.feed(turn())
    asked = loop.time()
    await h.wait_final("agent")
    assert 2.0 <= loop.time() - asked < 6.0
    assert h.finals("agent") == ["Fallback: hello there."]
    await h.finish()


@virtual
async def test_a_failing_voice_without_fallback_is_replaced_by_the_apology() -> None:
    local = FakeTTS(frequency=300.0)
    h = Harness(tts=BrokenTTS(), local_tts=local)
    await h.leg.feed(turn())
    await h.leg.wait_for(lambda _: bool(local.requests), 10)
    await h.wait_listening()
    assert [text for text, _ in local.requests] == [APOLOGY]
    # What the caller never heard is not in the history as said.
    assert h.conversation.history.items == [{"role": "user", "content": "hello there"}]
    await h.finish()


class BrokenSTT(FakeSTT):
    vendor = "BROKEN"

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        raise ProviderError("BROKEN STT: connection refused")


@virtual
async def test_the_transcription_fallback_hears_the_utterance() -> None:
    h = Harness(stt=BrokenSTT(), stt_fallback=FakeSTT("heard by the fallback"))
    await h.leg.feed(turn())
    await h.wait_final("agent")
    assert h.finals("user") == ["heard by the fallback"]
    await h.finish()
    [failure] = [u for u in h.taken_updates() if isinstance(u, ProviderFailure)]
    assert (failure.stage, failure.provider, failure.fallback) == ("stt", "BROKEN", "FAKE")


@virtual
async def test_a_failed_transcription_without_fallback_gets_the_apology() -> None:
    local = FakeTTS(frequency=300.0)
    h = Harness(stt=BrokenSTT(), local_tts=local)
    await h.leg.feed(turn())
    await h.leg.wait_for(lambda _: bool(local.requests), 10)
    await h.wait_listening()
    assert h.finals("user") == [] and h.conversation.history.items == []
    await h.finish()
