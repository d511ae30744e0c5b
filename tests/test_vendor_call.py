"""A call on the conversation with the seed's cloud stack, each vendor a local fake of its protocol: the agent
hears via DEEPGRAM, thinks via AZURE and speaks via ELEVENLABS, at the SIP rate (8 kHz) and the web rate
(48 kHz), on an in-memory leg with the real VAD, resampling and 20 ms clock."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from legs import MemoryLeg
from test_conversation_call import Call
from vendor_fakes.azure import AzureOpenAIFake
from vendor_fakes.deepgram import DeepgramFake
from vendor_fakes.elevenlabs import ElevenLabsFake

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation import Conversation
from agent_runtime.providers.azure_openai import azure_llm
from agent_runtime.providers.deepgram import DeepgramSTT
from agent_runtime.providers.elevenlabs import ElevenLabsTTS, VoiceDirectory
from agent_runtime.providers.remote import Timeouts
from media.dsp import dbfs

HEARD = "what time does the store open tomorrow"
REPLY = "The store opens at nine."


class Stack:
    def __init__(self) -> None:
        self.deepgram = DeepgramFake(transcripts=[HEARD])
        self.azure = AzureOpenAIFake(default_text=REPLY)
        self.elevenlabs = ElevenLabsFake()


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[Stack]:
    fakes = Stack()
    async with AsyncExitStack() as exits:
        for fake in (fakes.deepgram, fakes.azure, fakes.elevenlabs):
            await exits.enter_async_context(fake)  # type: ignore[arg-type]
        yield fakes


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_the_agent_hears_thinks_and_speaks_through_the_vendors(stack: Stack, rate: int) -> None:
    timeouts = Timeouts(connect=2.0, first_result=5.0)
    stt = DeepgramSTT("nova-2", stack.deepgram.api_key, stack.deepgram.base_url, language="en-US",
                      timeouts=timeouts)
    llm = azure_llm("gpt-4.1-mini", endpoint=stack.azure.endpoint, api_key=stack.azure.api_key,
                    deployment_map={}, timeout=5.0)
    tts = ElevenLabsTTS("Riya Rao", VoiceDirectory(stack.elevenlabs.api_key, stack.elevenlabs.base_url, timeouts),
                        timeouts=timeouts)
    tts.sample_rate = rate  # the leg's own rate: ElevenLabs makes it, no resampling hop
    config = AgentConfig(stt=stt, llm=llm, tts=tts, welcome_message="Hello, this is Talkwire.", speed=None,
                         call_user_alert_duration=0, call_end_duration=0, agent_prompt="You are a shop assistant.")
    leg = MemoryLeg(rate)
    call = Call(leg, Conversation(leg, config, direction="outbound"))
    try:
        await call.wait_final("agent")
        mark = asyncio.get_running_loop().time()
        await call.say("What time does the store open tomorrow?")
        await call.wait_final("agent", 2)
        assert call.finals("user") == [HEARD]
        assert call.finals("agent") == ["Hello, this is Talkwire.", REPLY]
        await call.wait_state("listening", 2)
        assert dbfs(call.leg.sent_audio(since=mark)) > -45, "no agent reply audio"
    finally:
        await call.finish()
        await stt.aclose()
    used = [s for s in stack.deepgram.sessions if s.audio]
    # One stream for the call, at the leg's own rate (no resampling): the turn's end asked for its finals
    # (Finalize), the call's end closed it the documented way.
    assert len(used) == 1 and used[0].query["sample_rate"] == str(rate) and used[0].query["language"] == "en-US"
    assert used[0].messages == ["Finalize", "CloseStream"]
    chat = stack.azure.requests[0]
    assert chat.path == "/openai/deployments/gpt-4.1-mini/chat/completions"
    assert chat.body["messages"][-1] == {"role": "user", "content": HEARD}
    speech = [r for r in stack.elevenlabs.requests if r.path.endswith("/stream")]
    assert [r.body["text"] for r in speech] == ["Hello, this is Talkwire.", REPLY]
    assert {r.query["output_format"] for r in speech} == {f"pcm_{rate}"}
