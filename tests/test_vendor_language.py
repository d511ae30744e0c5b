"""A caller identified as Hindi by the Deepgram fake (its protocol, over a real WebSocket): the agent pivots
and answers in Hindi through espeak-ng's `hi` voice, offline, with the switch on the timeline."""
from __future__ import annotations

import asyncio

from legs import MemoryLeg
from test_conversation_call import Call
from vendor_fakes.deepgram import DeepgramFake

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation import Conversation
from agent_runtime.providers.deepgram import DeepgramSTT
from agent_runtime.providers.espeak import EspeakTTS
from agent_runtime.providers.fake import FakeLLM
from agent_runtime.providers.remote import Timeouts
from agent_runtime.updates import LanguageSwitch, TurnTiming, Usage
from media.dsp import dbfs

HINDI = "मेरा ऑर्डर कहाँ है"


async def test_a_hindi_caller_heard_by_deepgram_is_answered_in_hindi_by_espeak() -> None:
    async with DeepgramFake(transcripts=[HINDI], language="hi") as deepgram:
        stt = DeepgramSTT("nova-2", deepgram.api_key, deepgram.base_url, timeouts=Timeouts(2.0, 5.0))
        llm, voice = FakeLLM("आपने कहा: "), EspeakTTS("en-us")
        config = AgentConfig(stt=stt, llm=llm, tts=voice, welcome_message=None, language="en-US",
                             enable_lid_detection=True, lid_allowed_languages=["hi", "en"],
                             call_user_alert_duration=0, call_end_duration=0)
        leg = MemoryLeg(8000)
        call = Call(leg, Conversation(leg, config))
        try:
            mark = asyncio.get_running_loop().time()
            await call.say("Where is my order?")
            await call.wait_final("agent", timeout=20)
            await call.wait_state("listening", 2, timeout=20)
            assert call.finals("user") == [HINDI]
            assert call.finals("agent") == [f"आपने कहा: {HINDI}."]
            assert dbfs(call.leg.sent_audio(since=mark)) > -45, "no reply audio"
        finally:
            await call.finish()
    assert voice.voice == "hi" and stt.language == "hi"
    assert llm.requests[0]["messages"][0]["content"].endswith("Answer in Hindi.")
    first = deepgram.sessions[0]
    assert "language" not in first.query and first.query["sample_rate"] == "8000"
    updates = call.taken_updates()
    assert LanguageSwitch("en-US", "hi", "DEEPGRAM") in updates
    [timing] = [u for u in updates if isinstance(u, TurnTiming)]
    assert timing.served_by == {"stt": "DEEPGRAM", "llm": "FAKE", "tts": "ESPEAK"}
    [usage] = [u for u in updates if isinstance(u, Usage)]
    assert usage.providers["DEEPGRAM"]["stt_audio_s"] > 0.5
    assert abs(usage.providers["ESPEAK"]["tts_characters"] - len(f"आपने कहा: {HINDI}.")) <= 1  # split in 2
