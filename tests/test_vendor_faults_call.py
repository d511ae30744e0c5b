"""Vendors failing under a live call (each vendor's protocol fake, real WebSockets and HTTP, an 8 kHz leg with
the real VAD): the call goes on through the fallback, or the local voice apologises; the failures are
reported by provider."""
from __future__ import annotations

from typing import Any

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
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.providers.remote import Timeouts
from agent_runtime.updates import ProviderFailure

HEARD = "what time does the store open tomorrow"
TIMEOUTS = Timeouts(connect=2.0, first_result=3.0)
APOLOGY = "Sorry, I had a problem."


def start(**overrides: Any) -> Call:
    values: dict[str, Any] = dict(stt=FakeSTT(HEARD), llm=FakeLLM(), tts=FakeTTS(), welcome_message=None,
                                  speed=2.0, call_user_alert_duration=0, call_end_duration=0)
    values.update(overrides)
    leg = MemoryLeg(8000)
    return Call(leg, Conversation(leg, AgentConfig(**values)))


def failures(call: Call) -> list[ProviderFailure]:
    return [u for u in call.taken_updates() if isinstance(u, ProviderFailure)]


async def test_a_deepgram_stream_dropped_mid_utterance_reconnects_for_that_utterance() -> None:
    async with DeepgramFake(transcripts=[HEARD]) as deepgram:
        deepgram.drop_after_bytes = 8000  # half a second of 8 kHz audio, then the connection is cut
        stt = DeepgramSTT("nova-2", deepgram.api_key, deepgram.base_url, timeouts=TIMEOUTS)
        call = start(stt=stt)
        try:
            await call.say("What time does the store open tomorrow?")
            await call.wait_final("agent")
            assert call.finals("user") == [HEARD]
            await call.wait_state("listening", 2)
            await call.say("Thanks.")
            await call.wait_final("agent", 2)
        finally:
            await call.finish()
    assert [(f.stage, f.provider, f.fallback) for f in failures(call)] == [("stt", "DEEPGRAM", None)]
    # The dropped stream, the utterance sent again on its own stream, and the next turn's stream.
    assert len([s for s in deepgram.sessions if s.audio]) == 3


async def test_a_refused_deepgram_hands_the_turn_to_the_transcription_fallback() -> None:
    async with DeepgramFake(transcripts=[HEARD]) as deepgram:
        deepgram.reject_status = 503
        stt = DeepgramSTT("nova-2", deepgram.api_key, deepgram.base_url, timeouts=TIMEOUTS)
        call = start(stt=stt, stt_fallback=FakeSTT("heard by the fallback"))
        try:
            await call.say("What time does the store open tomorrow?")
            await call.wait_final("agent")
            assert call.finals("user") == ["heard by the fallback"]
        finally:
            await call.finish()
    reported = [(f.stage, f.provider, f.fallback) for f in failures(call)]
    assert ("stt", "DEEPGRAM", "FAKE") in reported and all(r[1] == "DEEPGRAM" for r in reported)


async def test_azure_answering_500_gives_way_to_the_model_fallback() -> None:
    async with AzureOpenAIFake() as azure:
        azure.add_error(500)
        llm = azure_llm("gpt-4.1-mini", endpoint=azure.endpoint, api_key=azure.api_key, deployment_map={},
                        timeout=3.0)
        call = start(llm=llm, llm_fallback=FakeLLM("Fallback: "))
        try:
            await call.say("What time does the store open tomorrow?")
            await call.wait_final("agent")
            assert call.finals("agent") == [f"Fallback: {HEARD}."]
        finally:
            await call.finish()
    [failure] = failures(call)
    assert (failure.stage, failure.provider, failure.fallback) == ("llm", "AZURE", "FAKE")
    assert "500" in failure.message


async def test_elevenlabs_answering_429_without_fallback_gets_the_local_apology_and_the_call_goes_on() -> None:
    async with ElevenLabsFake() as elevenlabs:
        elevenlabs.status = 429
        tts = ElevenLabsTTS("Riya Rao", VoiceDirectory(elevenlabs.api_key, elevenlabs.base_url, TIMEOUTS),
                            timeouts=TIMEOUTS)
        local = FakeTTS(frequency=300.0)
        call = start(tts=tts, local_tts=local, stt=FakeSTT([HEARD, "thanks"]))
        try:
            await call.say("What time does the store open tomorrow?")
            await call.wait_state("listening", 2)
            assert [text for text, _ in local.requests] == [APOLOGY]
            elevenlabs.status = 200  # the vendor is back: the next turn is spoken by it
            await call.say("Thanks.")
            await call.wait_final("agent", 2)
            assert call.finals("agent") == [APOLOGY, "You said: thanks."]  # what the caller heard
        finally:
            await call.finish()
    assert {(f.stage, f.provider) for f in failures(call)} == {("tts", "ELEVENLABS")}
