"""The conversation's state machine on virtual time: a scripted VAD, FAKE providers, an in-memory leg.

The VAD hears speech in any frame whose first sample is non-zero, so a test says exactly when the caller
speaks; the event loop's clock jumps to the next timer (tests/virtual_clock.py), so a 30 s silence timeout
takes milliseconds and timing is exact.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np

from agent_runtime.agent_config import AgentConfig
from agent_runtime.call import Call
from agent_runtime.conversation import Conversation, State
from agent_runtime.providers.base import LLMChunk, TextDelta, ToolCallRequest
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.sentences import ELLIPSIS, heard_part
from agent_runtime.tools_api import BuiltinOutcome, CallContext
from agent_runtime.updates import BargeIn, Ended, TranscriptTurn, TurnTiming, Update
from legs import MemoryLeg
from virtual_clock import run_virtual

RATE = 16000  # the leg's, the VAD's, the fake STT's and the fake TTS's: no resampling anywhere
VOICE = 1000


class ScriptedVad:
    sample_rate = RATE

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(frame[0])


def speech(seconds: float) -> np.ndarray:
    return np.full(int(seconds * RATE), VOICE, dtype=np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def config(**overrides: Any) -> AgentConfig:
    values: dict[str, Any] = dict(stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS(), vad=ScriptedVad(),
                                  welcome_message=None, call_user_alert_duration=0, call_end_duration=0,
                                  partial_interval_ms=0)
    values.update(overrides)
    return AgentConfig(**values)


def virtual(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test body on virtual time (a plain test function for pytest)."""
    def run() -> None:
        run_virtual(test())
    run.__name__ = test.__name__
    return run


class Harness:
    def __init__(self, tools: Any = None, **overrides: Any) -> None:
        self.leg = MemoryLeg(RATE)
        self.config = config(**overrides)
        self.conversation = Conversation(self.leg, self.config, tools=tools)
        self.call = Call(self.leg, self.conversation)
        self.call.start()

    def finals(self, role: str) -> list[str]:
        return [e["text"] for e in self.leg.events_of("transcription") if e["role"] == role and e["is_final"]]

    def states(self) -> list[str]:
        return [e["state"] for e in self.leg.events_of("agent_state")]

    async def wait_final(self, role: str, count: int = 1, timeout: float = 60.0) -> None:
        await self.leg.wait_for(lambda _: len(self.finals(role)) >= count, timeout)

    async def wait_listening(self) -> None:
        await self.leg.wait_for(lambda _: self.conversation.state is State.LISTENING
                                and not self.leg.outbound.queued_samples, 60)

    def taken_updates(self) -> list[Update]:
        items = []
        while not self.call.updates.empty():
            items.append(self.call.updates.get_nowait())
        return items

    async def finish(self) -> str:
        reason = await self.call.end("caller_hangup")
        await self.leg.close()
        return reason


@virtual
async def test_the_welcome_is_spoken_then_the_agent_listens() -> None:
    h = Harness(welcome_message="Hello, this is Talkwire.")
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("agent") == ["Hello, this is Talkwire."]
    assert h.states() == ["speaking", "listening"]
    assert h.conversation.history.items == [{"role": "assistant", "content": "Hello, this is Talkwire."}]
    # The whole welcome played: 60 ms per character of the fake voice.
    assert h.leg.outbound.played_total == FakeTTS().render("Hello, this is Talkwire.").size
    assert await h.finish() == "caller_hangup"
    updates = h.taken_updates()
    assert TranscriptTurn("agent", "Hello, this is Talkwire.") in updates
    assert not any(isinstance(u, TurnTiming) for u in updates)  # the welcome is not an answer
    assert isinstance(updates[-1], Ended)


@virtual
async def test_a_spoken_turn_is_transcribed_and_answered() -> None:
    h = Harness(stt=FakeSTT("what time is it"))
    await h.leg.feed(np.concatenate((speech(1.0), silence(0.8))))
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("user") == ["what time is it"]
    assert h.finals("agent") == ["You said: what time is it."]
    assert h.states() == ["listening", "thinking", "speaking", "listening"]
    await h.finish()


@virtual
async def test_the_first_piece_of_an_answer_ends_before_a_joining_word() -> None:
    """The reply's first piece is spoken (and announced) before the rest of its first sentence: the caller waits
    only for "I heard the store opens" to be synthesized, not for the whole sentence."""
    h = Harness(stt=FakeSTT("the store opens at nine"), llm=FakeLLM(prefix="I heard "))
    await h.leg.feed(np.concatenate((speech(1.0), silence(0.8))))
    await h.wait_final("agent")
    pieces = [e["text"] for e in h.leg.events_of("transcription") if e["role"] == "agent" and not e["is_final"]]
    assert pieces == ["I heard the store opens", "I heard the store opens at nine."]
    assert h.finals("agent") == ["I heard the store opens at nine."]
    await h.finish()


@virtual
async def test_barge_in_keeps_exactly_the_played_text_in_history() -> None:
    first, second = "First sentence here.", "The second sentence is a good deal longer than the first."
    h = Harness(welcome_message=f"{first} {second}", stt=FakeSTT("stop please"))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(2.0)  # the first sentence (1.2 s) has played, the second is under way
    await h.leg.feed(np.concatenate((speech(0.6), silence(0.8))))
    await h.wait_final("agent", 2)
    await h.wait_listening()
    outbound = h.leg.outbound
    [(cut_at, dropped)] = outbound.clears
    assert 2.0 < cut_at < 2.2
    tts = FakeTTS()
    first_len, second_len = tts.render(first).size, tts.render(second).size
    played = first_len + second_len - dropped  # the whole welcome was queued before the cut
    heard_second = heard_part(second, (played - first_len) / second_len)
    assert heard_second and heard_second != second
    heard = f"{first} {heard_second}{ELLIPSIS}"
    assert h.conversation.history.items == [
        {"role": "assistant", "content": heard},
        {"role": "user", "content": "stop please"},
        {"role": "assistant", "content": "You said: stop please."},
    ]
    interrupted = [e for e in h.leg.events_of("transcription") if e.get("interrupted")]
    assert [e["text"] for e in interrupted] == [heard]
    assert [e for e in h.leg.events_sent if e["type"] == "clearAudio"]
    await h.finish()
    updates = h.taken_updates()
    assert BargeIn(int(played * 1000 / RATE)) in updates
    assert TranscriptTurn("agent", heard, interrupted=True) in updates
    assert loop.time() < 10


@virtual
async def test_a_speculative_reply_is_dropped_when_speech_resumes() -> None:
    stt = FakeSTT(["first words", "first words and more"])
    stt.speculative = True  # type: ignore[attr-defined]
    llm = FakeLLM(speculative=True)
    h = Harness(stt=stt, llm=llm)
    # A 300 ms pause: past the 100 ms tail (speculation starts, and its reply), short of the 500 ms end.
    await h.leg.feed(np.concatenate((speech(0.6), silence(0.3))))
    assert len(llm.requests) == 1 and llm.requests[0]["messages"][-1]["content"] == "first words"
    assert not h.leg.outbound.pushes, "a held reply's audio reached the leg"
    await h.leg.feed(np.concatenate((speech(0.6), silence(0.8))))
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("user") == ["first words and more"]
    assert h.finals("agent") == ["You said: first words and more."]
    assert h.conversation.history.items == [
        {"role": "user", "content": "first words and more"},
        {"role": "assistant", "content": "You said: first words and more."},
    ]
    await h.finish()
    [timing] = [u for u in h.taken_updates() if isinstance(u, TurnTiming)]
    assert timing.stt_speculative and timing.llm_speculative  # the second pause's speculation was the turn


@virtual
async def test_silence_alert_then_silence_hang_up() -> None:
    h = Harness(call_user_alert_duration=7000, call_end_duration=30000,
                silence_alert_message="Are you still there?")
    loop = asyncio.get_running_loop()
    await h.wait_final("agent")
    assert 7.0 <= loop.time() < 9.0
    reason = await asyncio.wait_for(asyncio.shield(h.call.task), 60)  # type: ignore[arg-type]
    # The alert does not restart the stretch: the hang-up comes 30 s after listening began.
    assert 30.0 <= loop.time() < 30.1
    assert reason == "silence_timeout" and h.leg.hangup_reason == "silence_timeout"
    assert h.finals("agent") == ["Are you still there?"]
    await h.leg.close()


@virtual
async def test_speech_resets_the_silence_timers() -> None:
    h = Harness(call_user_alert_duration=0, call_end_duration=5000)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(4.0)
    await h.leg.feed(np.concatenate((speech(0.5), silence(0.8))))
    reason = await asyncio.wait_for(asyncio.shield(h.call.task), 60)  # type: ignore[arg-type]
    assert reason == "silence_timeout"
    assert loop.time() > 9.0  # 5 s after the reply to the caller's turn played


class ToolRoundLLM:
    """Asks for one tool, then speaks the tool's answer."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    async def stream(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                     temperature: float | None = None, top_p: float | None = None) -> AsyncIterator[LLMChunk]:
        self.requests.append(messages)
        await asyncio.sleep(0.05)
        if messages[-1]["role"] == "tool":
            yield TextDelta(f"The store opens at {messages[-1]['content'].strip(chr(34))}.")
        else:
            yield TextDelta("Let me check.")
            yield ToolCallRequest("call_1", "lookup_hours", {"store": "north"})


class HoursTools:
    def __init__(self) -> None:
        self.calls: list[tuple[ToolCallRequest, CallContext | None]] = []

    def definitions(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "lookup_hours", "parameters": {"type": "object"}}}]

    async def execute(self, request: ToolCallRequest, ctx: CallContext | None = None) -> BuiltinOutcome:
        self.calls.append((request, ctx))
        await asyncio.sleep(0.5)  # a webhook's round trip
        return BuiltinOutcome(request.id, request.name, "9 am")

    async def cancel_pending(self, reason: str) -> list[str]:
        return []


@virtual
async def test_a_tool_round_runs_the_tool_and_speaks_the_second_answer() -> None:
    llm, tools = ToolRoundLLM(), HoursTools()
    h = Harness(tools=tools, llm=llm, stt=FakeSTT("when do you open"))
    await h.leg.feed(np.concatenate((speech(0.8), silence(0.8))))
    await h.wait_final("agent")
    await h.wait_listening()
    assert h.finals("agent") == ["Let me check. The store opens at 9 am."]
    [(request, ctx)] = tools.calls
    assert request.arguments == {"store": "north"} and ctx is not None and ctx.channel == h.leg.channel
    items = h.conversation.history.items
    assert items[1]["content"] == "Let me check." and items[1]["tool_calls"][0]["id"] == "call_1"
    assert items[2] == {"role": "tool", "tool_call_id": "call_1", "content": "9 am"}
    assert items[3] == {"role": "assistant", "content": "The store opens at 9 am."}
    assert len(llm.requests) == 2 and llm.requests[1][-1]["role"] == "tool"
    await h.finish()


@virtual
async def test_end_call_hangs_up_once_the_goodbye_played() -> None:
    class GoodbyeLLM:
        async def stream(self, messages: list[dict[str, Any]], **_: Any) -> AsyncIterator[LLMChunk]:
            yield TextDelta("Goodbye!")
            yield ToolCallRequest("call_1", "end_call", {})

    h = Harness(llm=GoodbyeLLM())
    await h.leg.feed(np.concatenate((speech(0.5), silence(0.8))))
    reason = await asyncio.wait_for(asyncio.shield(h.call.task), 30)  # type: ignore[arg-type]
    assert reason == "agent_hangup" and h.leg.hangup_reason == "agent_hangup"
    assert h.finals("agent") == ["Goodbye!"]
    assert h.leg.outbound.played_total == h.leg.outbound.pushed_total  # played out before the hang-up
    await h.leg.close()


@virtual
async def test_dtmf_keys_become_one_caller_turn_after_a_pause() -> None:
    llm = FakeLLM()
    h = Harness(llm=llm)
    loop = asyncio.get_running_loop()
    for digit in "12#":
        h.leg.deliver_event({"type": "dtmf", "digits": digit})
        await asyncio.sleep(0.5)
    pressed = loop.time()
    await h.wait_final("agent")
    assert loop.time() >= pressed - 0.5 + 1.5  # DTMF_GAP_S after the last key
    assert llm.requests[0]["messages"][-1] == {"role": "user", "content": "The caller pressed 1 2 #."}
    assert h.finals("agent") == ["You said: The caller pressed 1 2 #."]
    await h.finish()
    assert TranscriptTurn("user", "The caller pressed 1 2 #.") in h.taken_updates()
