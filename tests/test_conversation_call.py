"""Conversation end to end on an in-memory leg: real VAD, real resampling, real 20 ms clock, FAKE providers."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

import agent_runtime.call
from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation import Conversation
from agent_runtime.providers.base import ProviderError
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.updates import BargeIn, Ended, ProviderFailure, StateChanged, TranscriptTurn, TurnTiming
from media.dsp import dbfs
from media.vad import WebRtcVad
from legs import MemoryLeg, espeak_speech

SENTENCE = "What time does the store open tomorrow?"
SHORT = "Hello there."


def config(**overrides: Any) -> AgentConfig:
    # speed 2.0: the fake voice talks twice as fast, which halves the time tests wait for replies to play.
    values: dict[str, Any] = dict(stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS(), welcome_message=None, speed=2.0,
                                  call_user_alert_duration=0, call_end_duration=0)
    values.update(overrides)
    return AgentConfig(**values)


class Call(agent_runtime.call.Call):
    """A call running on a MemoryLeg from the start, with what one test looks at."""

    def __init__(self, leg: MemoryLeg, conversation: Conversation) -> None:
        super().__init__(leg, conversation)
        self.leg: MemoryLeg = leg
        self.task = self.start()

    def states(self) -> list[str]:
        return [e["state"] for e in self.leg.events_of("agent_state")]

    def finals(self, role: str) -> list[str]:
        return [e["text"] for e in self.leg.events_of("transcription") if e["role"] == role and e["is_final"]]

    async def wait_state(self, state: str, count: int = 1, timeout: float = 15.0) -> None:
        await self.leg.wait_for(lambda _: self.states().count(state) >= count, timeout)

    async def wait_final(self, role: str, count: int = 1, timeout: float = 15.0) -> None:
        await self.leg.wait_for(lambda _: len(self.finals(role)) >= count, timeout)

    async def say(self, text: str = SHORT, trailing_silence: float = 0.7) -> None:
        await self.leg.feed(espeak_speech(text, self.leg.sample_rate))
        await self.leg.feed_silence(trailing_silence)

    def taken_updates(self) -> list[Any]:
        items = []
        while not self.updates.empty():
            items.append(self.updates.get_nowait())
        return items

    async def finish(self) -> str:
        if not self.task.done():
            self.leg.remote_hangup()
        reason = await asyncio.wait_for(self.task, 10)
        await self.leg.close()
        return reason


async def start(rate: int = 48000, *, direction: str = "outbound", tools: Any = None, **overrides: Any) -> Call:
    leg = MemoryLeg(rate)
    return Call(leg, Conversation(leg, config(**overrides), tools=tools, direction=direction))


# 48 kHz (WebRTC) with the VAD at the leg's own rate; 8 kHz (SIP) with a configured 16 kHz VAD, which the
# conversation feeds through a low-latency streaming resampler (the bench smoke test covers 8 kHz native).
@pytest.mark.parametrize(("rate", "vad_rate"), [(48000, None), (8000, 16000)])
async def test_welcome_then_a_spoken_turn_gets_a_transcript_and_a_spoken_reply(rate: int, vad_rate: int | None) -> None:
    stt = FakeSTT("what time does the store open tomorrow")
    vad = WebRtcVad(sample_rate=vad_rate) if vad_rate else None
    call = await start(rate, stt=stt, vad=vad, welcome_message="Hello, this is Talkwire.")
    assert call.conversation.vad.sample_rate == (vad_rate or rate)
    try:
        await call.wait_final("agent")
        assert call.finals("agent") == ["Hello, this is Talkwire."]
        welcome_audio = call.leg.sent_audio()
        assert dbfs(welcome_audio) > -40, "the welcome message was not spoken"
        assert stt.final_calls == 0

        mark = asyncio.get_running_loop().time()
        await call.say(SENTENCE)
        await call.wait_final("agent", 2)
        assert call.finals("user") == ["what time does the store open tomorrow"]
        # A 2.6 s utterance gets partials (STT re-run on the growing buffer at most once a second).
        user_partials = [e for e in call.leg.events_of("transcription") if e["role"] == "user" and not e["is_final"]]
        assert user_partials and stt.partial_calls >= 1
        assert "what time does the store open tomorrow".startswith(user_partials[0]["text"])
        assert call.finals("agent")[1] == "You said: what time does the store open tomorrow."
        await call.wait_state("listening", 2)
        reply = call.leg.sent_audio(since=mark)
        assert dbfs(reply[-int(1.5 * rate):]) > -40 or dbfs(reply) > -45, "no agent reply audio"
        # STT got the caller's utterance at its own rate, about as long as the speech (plus pre-roll/tail).
        spoken = len(espeak_speech(SENTENCE, 16000)) / 16000
        assert stt.last_audio is not None
        assert spoken - 0.3 < len(stt.last_audio) / 16000 < spoken + 0.8
        assert call.states() == ["speaking", "listening", "thinking", "speaking", "listening"]
        partials = [e for e in call.leg.events_of("transcription") if e["role"] == "agent" and not e["is_final"]]
        assert partials and partials[-1]["text"] == "You said: what time does the store open tomorrow."
    finally:
        await call.finish()
    updates = call.taken_updates()
    assert TranscriptTurn("user", "what time does the store open tomorrow") in updates
    assert StateChanged("thinking") in updates
    assert isinstance(updates[-1], Ended)


async def test_inbound_calls_use_the_inbound_welcome() -> None:
    call = await start(direction="inbound", welcome_message="Outbound hello.",
                       inbound_welcome_message="Thanks for calling.")
    try:
        await call.wait_final("agent")
        assert call.finals("agent") == ["Thanks for calling."]
    finally:
        await call.finish()


async def test_barge_in_clears_audio_and_keeps_only_what_was_heard() -> None:
    long_request = ("please tell me everything about the opening hours of every store in the city "
                    "and also about the parking and the holidays")
    call = await start(stt=FakeSTT([long_request, "sorry"]))
    try:
        await call.say()
        await call.wait_state("speaking")
        await asyncio.sleep(1.0)  # about a second of the ~8 s reply plays
        assert not call.leg.outbound.clears
        barge_started = asyncio.get_running_loop().time()
        await call.leg.feed(espeak_speech("Stop please.", call.leg.sample_rate))
        await call.leg.wait_event(lambda e: e["type"] == "clearAudio")
        assert call.leg.outbound.clears, "outbound queue was not cleared"
        cleared_at, dropped = call.leg.outbound.clears[0]
        assert dropped > 0
        assert cleared_at - barge_started < 1.0
        # After the clear, nothing of the old reply leaves the leg: sent frames are silence until the next reply.
        await call.leg.feed_silence(0.1)
        after = [f for f in call.leg.sent if f.at > cleared_at + 0.001]
        assert after and all(f.samples is None for f in after[:3])

        assistant = [m for m in call.conversation.history.items if m["role"] == "assistant"]
        full = "You said: " + long_request + "."
        heard = assistant[0]["content"]
        assert heard.endswith("…")
        assert full.startswith(heard[:-1].rstrip(","))
        assert 0 < len(heard) < len(full) / 2
        interrupted = [e for e in call.leg.events_of("transcription") if e.get("interrupted")]
        assert interrupted and interrupted[0]["text"] == heard
        await call.leg.feed_silence(0.8)
        # The interruption is itself a turn: the caller gets an answer to it.
        await call.wait_final("agent", 2)
    finally:
        await call.finish()
    updates = call.taken_updates()
    barge = [u for u in updates if isinstance(u, BargeIn)]
    assert len(barge) == 1 and 500 < barge[0].played_ms < 3000
    assert TranscriptTurn("agent", heard, interrupted=True) in updates


async def test_silence_alert_once_then_hang_up() -> None:
    call = await start(silence_alert_message="Are you still there?", call_user_alert_duration=400,
                       call_end_duration=2500)
    reason = await asyncio.wait_for(call.task, 15)
    assert reason == "silence_timeout"
    assert call.leg.hangup_reason == "silence_timeout"
    assert call.finals("agent") == ["Are you still there?"]
    await call.leg.close()


async def test_speech_resets_the_silence_timer() -> None:
    call = await start(call_end_duration=1500, silence_alert_message=None, call_user_alert_duration=0)
    try:
        await call.leg.feed_silence(1.0)
        await call.say(trailing_silence=0.6)
        await call.wait_final("agent")
        assert not call.task.done()
        reason = await asyncio.wait_for(call.task, 10)
        assert reason == "silence_timeout"
    finally:
        await call.leg.close()


async def test_initial_mic_disable_ignores_early_speech() -> None:
    stt = FakeSTT()
    call = await start(stt=stt, initial_disable_mic_duration=1500)
    try:
        await call.say(trailing_silence=0.6)  # all inside the muted window
        assert stt.final_calls == 0 and not call.finals("user")
        await call.leg.feed_silence(0.3)
        await call.say()
        await call.wait_final("user")
        assert stt.final_calls == 1
    finally:
        await call.finish()


async def test_unknown_or_untyped_messages_get_an_error_and_the_call_goes_on() -> None:
    call = await start()
    try:
        call.leg.deliver_event({"type": "no_such_thing", "x": 1})
        call.leg.deliver_event({"text": "no type at all"})
        call.leg.deliver_event(["not", "an", "object"])  # type: ignore[arg-type]
        await call.leg.wait_for(lambda leg: len(leg.events_of("error")) >= 3)
        errors = call.leg.events_of("error")
        assert {e["code"] for e in errors} == {"UNKNOWN_MESSAGE_TYPE"}
        assert "no_such_thing" in errors[0]["message"]
        await call.say()
        await call.wait_final("agent")
    finally:
        await call.finish()


class FlakyLLM(FakeLLM):
    """Test double: fails its first `failures` requests with ProviderError, then echoes."""

    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[Any]:
        if self.failures:
            self.failures -= 1
            raise ProviderError("model endpoint unreachable")
        async for chunk in super().stream(messages, **kwargs):
            yield chunk


class FlakySTT(FakeSTT):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        if final and not self.failed:
            self.failed = True
            raise ProviderError("whisper crashed")
        return await super().transcribe(audio, final=final)


@pytest.mark.parametrize("stage", ["llm", "stt"])
async def test_provider_error_apologises_and_the_call_goes_on(stage: str) -> None:
    providers = {"llm": FlakyLLM()} if stage == "llm" else {"stt": FlakySTT()}
    call = await start(**providers)
    try:
        await call.say()
        await call.wait_final("agent")
        assert call.finals("agent") == ["Sorry, I had a problem."]
        await call.wait_state("listening", 2)
        await call.say()
        await call.wait_final("agent", 2)
        assert call.finals("agent")[1] == "You said: hello there."
    finally:
        await call.finish()
    failures = [u for u in call.taken_updates() if isinstance(u, ProviderFailure)]
    assert [f.stage for f in failures] == [stage]


async def test_remote_hangup_stops_everything_promptly() -> None:
    call = await start(welcome_message="This is a rather long welcome message that keeps on going for a while.")
    await call.wait_state("speaking")
    call.leg.remote_hangup("user_hangup")
    assert await asyncio.wait_for(call.task, 2) == "user_hangup"
    assert call.leg.hangup_reason is None
    await call.leg.close()


class SlowSTT(FakeSTT):
    """FakeSTT whose final transcriptions take `delay` seconds; records the length of each final's audio and
    answers by length, so a test sees which audio a transcript came from. Slow, so it declares itself
    worth speculating on, as WhisperSTT does."""

    speculative = True

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.final_lengths: list[int] = []

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        if not final:
            return await super().transcribe(audio, final=False)
        self.final_lengths.append(len(audio))
        await asyncio.sleep(self.delay)
        return f"{len(audio)} samples"


async def timings(call: Call) -> list[TurnTiming]:
    """The TurnTiming updates so far (the one of a reply comes just after its final transcript)."""
    found: list[TurnTiming] = []
    for _ in range(50):
        found += [u for u in call.taken_updates() if isinstance(u, TurnTiming)]
        if found:
            break
        await asyncio.sleep(0.02)
    return found


@pytest.mark.parametrize(("configured", "declared"), [(True, True), (False, True), (True, False)])
async def test_final_transcription_starts_at_the_pause_and_overlaps_the_endpointing_wait(
        configured: bool, declared: bool) -> None:
    """Only when the agent allows it and the STT declares itself slow enough to gain (FAKE does not)."""
    stt = SlowSTT(delay=0.3)
    stt.speculative = declared
    speculative = configured and declared
    call = await start(stt=stt, speculative_stt=configured, partial_interval_ms=0)
    try:
        await call.say()
        await call.wait_final("agent")
        [timing] = await timings(call)
        assert len(stt.final_lengths) == 1  # the speculation's result is used: no second transcription
        assert timing.stt_speculative is speculative
        assert timing.stt_run_ms >= 290
        if speculative:  # 0.3 s of STT fits in the 0.4 s between the pause's TAIL_MS and the end of the turn
            assert timing.stt_ms < 100
        else:
            assert timing.stt_ms >= 290
        assert call.finals("user") == [f"{stt.final_lengths[0]} samples"]
    finally:
        await call.finish()


async def test_a_speculation_is_dropped_when_speech_resumes_after_the_pause() -> None:
    stt = SlowSTT(delay=0.05)
    call = await start(stt=stt, partial_interval_ms=0)
    try:
        # A 0.3 s pause: past the TAIL_MS that starts a speculation, short of the 0.5 s that ends the turn
        # (espeak's own trailing silence is cut off first).
        first = espeak_speech("Hello there.", call.leg.sample_rate)
        loud = np.flatnonzero(np.abs(first.astype(np.int32)) > 300)
        await call.leg.feed(first[:loud[-1] + 1])
        await call.leg.feed_silence(0.3)
        await call.say("How are you?")
        await call.wait_final("agent")
        [timing] = await timings(call)
        assert len(stt.final_lengths) >= 2
        whole = stt.final_lengths[-1]
        assert all(n < whole for n in stt.final_lengths[:-1]), stt.final_lengths
        # The transcript is of the whole utterance, not of the part before the pause.
        assert call.finals("user") == [f"{whole} samples"]
        assert timing.stt_speculative is True  # the last pause's speculation, on the whole utterance
    finally:
        await call.finish()


@pytest.mark.parametrize("partials", [True, False])
async def test_partials_follow_the_stt_providers_partials_flag(partials: bool) -> None:
    stt = FakeSTT(SENTENCE)
    stt.partials = partials  # WhisperSTT says False: a partial in progress would delay the final
    call = await start(stt=stt, partial_interval_ms=300)
    try:
        await call.say(SENTENCE)
        await call.wait_final("user")
        sent = [e for e in call.leg.events_of("transcription") if e["role"] == "user" and not e["is_final"]]
        assert (stt.partial_calls > 0) is partials
        assert bool(sent) is partials
        assert call.finals("user") == [SENTENCE]
    finally:
        await call.finish()


class SlowLLM(FakeLLM):
    """FakeLLM whose first token comes after `delay` seconds; `speculative` as a provider declares it."""

    def __init__(self, delay: float, speculative: bool = True) -> None:
        super().__init__()
        self.delay = delay
        self.speculative = speculative

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[Any]:
        await asyncio.sleep(self.delay)
        async for chunk in super().stream(messages, **kwargs):
            yield chunk


def note_thinking_times(leg: MemoryLeg) -> list[float]:
    """Loop times at which the conversation told the client it is `thinking` (the end of the turn)."""
    times: list[float] = []
    send = leg.send_event

    async def recording(message: dict) -> None:
        if message.get("type") == "agent_state" and message.get("state") == "thinking":
            times.append(asyncio.get_running_loop().time())
        await send(message)

    leg.send_event = recording  # type: ignore[method-assign]
    return times


@pytest.mark.parametrize("speculative", [True, False])
async def test_a_reply_starts_at_the_pause_but_its_audio_waits_for_the_end_of_the_turn(speculative: bool) -> None:
    llm = SlowLLM(delay=0.2, speculative=speculative)
    call = await start(stt=SlowSTT(delay=0.05), llm=llm, partial_interval_ms=0)
    thinking = note_thinking_times(call.leg)
    try:
        await call.say()
        await call.wait_final("agent")
        [timing] = await timings(call)
        assert timing.llm_speculative is speculative
        assert call.leg.outbound.pushes and thinking
        assert call.leg.outbound.pushes[0][0] >= thinking[0]  # nothing played before the turn ended
        if speculative:  # the LLM's 0.2 s ran inside the endpointing wait
            assert timing.response_ms < 120
        else:
            assert timing.response_ms >= 200
        assert len(llm.requests) == 1
        assert [m["role"] for m in call.conversation.history.items] == ["user", "assistant"]
    finally:
        await call.finish()


async def test_a_speculative_reply_is_dropped_without_a_trace_when_speech_resumes() -> None:
    stt, llm = SlowSTT(delay=0.02), FakeLLM(speculative=True)
    call = await start(stt=stt, llm=llm, partial_interval_ms=0)
    try:
        first = espeak_speech("Hello there.", call.leg.sample_rate)
        loud = np.flatnonzero(np.abs(first.astype(np.int32)) > 300)
        await call.leg.feed(first[:loud[-1] + 1])
        await call.leg.feed_silence(0.3)  # the speculative reply starts in this pause
        assert len(llm.requests) == 1
        await call.say("How are you?")
        await call.wait_final("agent")
        whole = stt.final_lengths[-1]
        assert call.finals("user") == [f"{whole} samples"]
        assert call.finals("agent") == [f"You said: {whole} samples."]
        assert [(m["role"], m["content"]) for m in call.conversation.history.items] == [
            ("user", f"{whole} samples"), ("assistant", f"You said: {whole} samples.")]
        assert not call.leg.events_of("clearAudio")
        assert not [u for u in call.taken_updates() if isinstance(u, BargeIn)]
    finally:
        await call.finish()


async def test_caller_audio_goes_straight_to_the_conversation_and_a_failure_there_ends_the_call() -> None:
    """The conversation consumes caller frames in the transport's tick (no queue); if its per-frame work
    raises, the call ends with internal_error and is hung up, as a failed task would end it."""
    call = await start(welcome_message=None)
    await asyncio.sleep(0.05)
    assert call.leg._consumer is not None
    await call.leg.feed_silence(0.1)
    assert call.leg.inbound.empty()  # nothing queued: every frame went to the consumer

    def broken_vad(frame: np.ndarray) -> bool:
        raise RuntimeError("VAD exploded")

    call.conversation.vad.is_speech = broken_vad  # type: ignore[method-assign]
    await call.leg.feed_silence(0.1)
    assert await asyncio.wait_for(call.task, 5) == "internal_error"
    assert call.leg.hangup_reason == "internal_error"
    assert call.leg._consumer is None  # the leg no longer feeds a conversation that has ended
    await call.leg.close()
