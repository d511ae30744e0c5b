"""Vendors failing under web calls through the real server (each vendor a local fake of its protocol; the
server's connect and first-result timeouts at 2 s and 3 s): the call goes on through the stage's fallback
named on the agent, or the local voice apologises and the next turn is served again; the call record
(`provider_error` with provider and fallback, `timing.served_by`) and `/metrics`
(`talkwire_provider_errors_total{stage,provider}`) say what happened. One server for the module.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sipp.harness import HAVE_SPEECH_TOOLS
from test_e2e_sip_calls import Api
from vendor_fakes.live import (
    HeardTurn,
    agent_from,
    api,  # noqa: F401  (a module fixture)
    caller_speech,
    events,
    loud_seconds,
    metric,
    tone_of,
    tone_share,
    turns,
    vendors,  # noqa: F401  (a module fixture)
    web_call,
)
from vendor_fakes.stack import GROQ_MODEL, VendorStack

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox make the caller's speech"),
]

SPOKEN = "What time does the store open tomorrow?"
HEARD = "what time does the store open tomorrow"
REPLY = "The store opens at nine."
WELCOME = "Hello."
APOLOGY = "Sorry, I had a problem."  # the agent's error_message (default), in the local voice
ERRORS = "talkwire_provider_errors_total"


@pytest.fixture
def fresh(vendors: VendorStack) -> VendorStack:
    vendors.reset()
    vendors.deepgram.transcripts = [HEARD]
    vendors.azure.default_text = REPLY
    return vendors


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return caller_speech(SPOKEN, tmp_path_factory.mktemp("speech"))


def agent(**choices: Any) -> dict[str, Any]:
    """The seed's cloud stack (Deepgram, Azure, ElevenLabs), with `choices` (fallbacks) on top."""
    return {"name": "Store", "welcome_message": WELCOME, "agent_prompt": "You are a shop assistant.",
            "language": "en-US", "model": {"provider": "AZURE", "model": "gpt-4.1-mini"},
            "voice": {"provider": "ELEVENLABS", "name": "Riya Rao"},
            "transcription": {"provider": "DEEPGRAM", "model": "nova-2"}, **choices}


async def errors_counted(api: Api) -> dict[tuple[str, str], float]:
    text = (await api.request("GET", "/metrics")).text
    return {(stage, provider): metric(text, ERRORS, stage=stage, provider=provider)
            for stage, provider in (("stt", "DEEPGRAM"), ("llm", "AZURE"), ("tts", "ELEVENLABS"))}


async def call(api: Api, body: dict[str, Any], speech: np.ndarray, **options: Any
               ) -> tuple[list[HeardTurn], dict[str, Any], dict[tuple[str, str], float]]:
    """A web call on a new agent: what the caller heard per turn, the final record, and the provider errors
    `/metrics` counted during it."""
    before = await errors_counted(api)
    caller, heard = await web_call(api, await agent_from(api, body), speech, **options)
    record, _ = await api.follow(caller.call_id)
    after = await errors_counted(api)
    assert record["status"] == "completed", record
    return heard, record, {key: after[key] - before[key] for key in after if after[key] != before[key]}


def failures(record: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    return {(e["stage"], e["provider"], e["fallback"]) for e in events(record, "provider_error")}


async def test_deepgram_refusing_connections_hands_the_turn_to_the_transcription_fallback(
        api: Api, fresh: VendorStack, speech: np.ndarray) -> None:
    vendors = fresh
    vendors.sarvam.transcript, vendors.sarvam.language_code = HEARD, "en-IN"
    await vendors.deepgram.stop()  # nothing listens on its port: connections are refused
    try:
        [turn], record, counted = await call(api, agent(transcription={
            "provider": "DEEPGRAM", "model": "nova-2", "fallback": {"provider": "SARVAM", "model": "saaras:v3"}}),
            speech)
    finally:
        await vendors.deepgram.start()
    assert (turn.user, turn.agent) == (HEARD, REPLY)
    # the stream's connection attempts (at call start, none serving a turn yet), then the utterance SARVAM heard
    assert ("stt", "DEEPGRAM", "SARVAM") in failures(record)
    assert failures(record) <= {("stt", "DEEPGRAM", "SARVAM"), ("stt", "DEEPGRAM", None)}
    assert events(record, "timing")[0]["served_by"] == {"stt": "SARVAM", "llm": "AZURE", "tts": "ELEVENLABS"}
    [heard_by] = [r for r in vendors.sarvam.requests if r.path == "/speech-to-text"]
    assert heard_by.body["model"] == "saaras:v3" and heard_by.files["file"][:4] == b"RIFF"
    assert counted[("stt", "DEEPGRAM")] >= 1 and set(counted) == {("stt", "DEEPGRAM")}


async def test_azure_answering_429_gives_way_to_the_groq_fallback(api: Api, fresh: VendorStack,
                                                                  speech: np.ndarray) -> None:
    vendors = fresh
    vendors.azure.add_error(429)
    vendors.groq.add_text("Groq says nine.")
    [turn], record, counted = await call(api, agent(model={
        "provider": "AZURE", "model": "gpt-4.1-mini", "fallback": {"provider": "GROQ", "model": GROQ_MODEL}}),
        speech)
    assert (turn.user, turn.agent) == (HEARD, "Groq says nine.")
    assert 190 <= tone_of(turn.audio) <= 210  # spoken by ElevenLabs as usual
    assert failures(record) == {("llm", "AZURE", "GROQ")}
    [error] = events(record, "provider_error")
    assert "429" in error["message"]
    assert events(record, "timing")[0]["served_by"] == {"stt": "DEEPGRAM", "llm": "GROQ", "tts": "ELEVENLABS"}
    [chat] = vendors.groq.chat_requests
    assert chat.headers["authorization"] == f"Bearer {vendors.groq.api_key}" and chat.body["model"] == GROQ_MODEL
    assert chat.body["messages"][-1] == {"role": "user", "content": HEARD}
    assert counted == {("llm", "AZURE"): 1}


async def test_elevenlabs_answering_500_gives_way_to_the_sarvam_voice(api: Api, fresh: VendorStack,
                                                                      speech: np.ndarray) -> None:
    vendors = fresh
    vendors.elevenlabs.status = 500
    vendors.sarvam.frequency = 320.0  # the caller tells the voices apart
    [turn], record, counted = await call(api, agent(voice={
        "provider": "ELEVENLABS", "name": "Riya Rao", "fallback": {"provider": "SARVAM", "name": "anushka"}}),
        speech)
    assert (turn.user, turn.agent) == (HEARD, REPLY)
    assert 310 <= tone_of(turn.audio) <= 330  # the caller heard the fallback voice
    assert turns(record, "agent") == [WELCOME, REPLY]
    assert failures(record) == {("tts", "ELEVENLABS", "SARVAM")}  # the welcome's and the reply's
    assert events(record, "timing")[0]["served_by"] == {"stt": "DEEPGRAM", "llm": "AZURE", "tts": "SARVAM"}
    spoken = " ".join(r.body["text"] for r in vendors.sarvam.requests if r.path == "/text-to-speech")
    assert spoken == f"{WELCOME} {REPLY}"
    assert counted[("tts", "ELEVENLABS")] >= 2 and set(counted) == {("tts", "ELEVENLABS")}


async def test_a_stalled_elevenlabs_without_fallback_gets_the_local_apology_and_the_call_goes_on(
        api: Api, fresh: VendorStack, speech: np.ndarray) -> None:
    vendors = fresh

    def stall_first_turn(index: int) -> None:  # after the welcome: the first answer stalls, the second does not
        vendors.elevenlabs.stall_s = 5.0 if index == 0 else 0.0

    [stalled, back], record, counted = await call(api, agent(), speech, turns=2, before_turn=stall_first_turn)
    assert (stalled.user, stalled.agent) == (HEARD, APOLOGY)
    assert (back.user, back.agent) == (HEARD, REPLY)
    assert loud_seconds(stalled.audio) >= 0.5 and tone_share(stalled.audio, 200) < 0.3  # speech, not the tone
    assert 190 <= tone_of(back.audio) <= 210  # ElevenLabs again
    assert turns(record, "agent") == [WELCOME, APOLOGY, REPLY]
    assert failures(record) == {("tts", "ELEVENLABS", None)}
    assert counted == {("tts", "ELEVENLABS"): 1}


async def test_a_deepgram_stream_cut_mid_utterance_reconnects_for_it(api: Api, fresh: VendorStack,
                                                                     speech: np.ndarray) -> None:
    vendors = fresh
    vendors.deepgram.drop_after_bytes = 48000 * 2  # one second of the caller's 48 kHz audio, then cut
    [turn], record, counted = await call(api, agent(), speech)
    assert (turn.user, turn.agent) == (HEARD, REPLY)
    assert failures(record) == {("stt", "DEEPGRAM", None)}
    assert events(record, "timing")[0]["served_by"]["stt"] == "DEEPGRAM"
    assert len([s for s in vendors.deepgram.sessions if s.audio]) >= 2  # the cut stream, the utterance again
    assert counted == {("stt", "DEEPGRAM"): 1}
