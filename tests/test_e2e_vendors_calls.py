"""The seed's own agents on the cloud vendors, through the real server: `talkwire serve` (uvicorn on a loopback
port, its SIP user agent on a free UDP port) with each vendor's key and base URL pointing at a local fake of
that vendor's protocol (tests/vendor_fakes). The agents are made with the seed's `POST /assistant` bodies; a
web call (the aiortc caller) and phone calls (sipp as the callee) hear through the vendor STT, think through
the vendor LLM and speak through the vendor TTS. Each fake checks the credentials and records what it got;
the tests check that, what the caller heard and what the call record says (transcript, who served each stage,
latencies, usage). One server for the module.
"""
from __future__ import annotations

import copy
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sipp.harness import HAVE_SPEECH_TOOLS, SIPP, start_sipp
from test_api_agents import SEED_AGENT_CREATE, SEED_AGENT_UPDATE
from test_e2e_sip_calls import Api, callee_bye, scenario, stream_after
from vendor_fakes.live import (
    agent_from,
    api,  # noqa: F401  (a module fixture)
    caller_speech,
    dial_sipp,
    events,
    tone_of,
    turns,
    vendors,  # noqa: F401  (a module fixture)
    web_call,
)
from vendor_fakes.stack import VendorStack

from media.wav import read_wav_channels

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox make the caller's speech"),
]

SPOKEN = "What time does the store open tomorrow?"
HEARD = "what time does the store open tomorrow"  # what the Deepgram fake transcribes
REPLY = "The store opens at nine."  # what the Azure fake answers
WELCOME = SEED_AGENT_CREATE["welcome_message"]
USAGE = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}


@pytest.fixture
def fresh(vendors: VendorStack) -> VendorStack:
    vendors.reset()
    vendors.deepgram.transcripts = [HEARD]
    vendors.azure.add_text(REPLY)
    vendors.azure.usage = USAGE
    return vendors


def check_record(record: dict[str, Any], served_by: dict[str, str], welcome: str, user: str, reply: str) -> None:
    assert record["status"] == "completed", record
    assert turns(record, "user") == [user] and turns(record, "agent") == [welcome, reply], record["transcript"]
    [timing] = events(record, "timing")
    assert timing["served_by"] == served_by
    for stage in ("stt_ms", "llm_first_token_ms", "tts_first_audio_ms", "response_ms"):
        assert timing[stage] is not None and timing[stage] >= 0, (stage, timing)
    assert events(record, "provider_error") == []


def check_linear16(audio: bytes, rate: int, *, spoken_s: float) -> None:
    """`audio` is little-endian int16 mono at `rate` holding the caller's speech: as long as it (the local VAD's
    pre-roll and the silence that ends the turn on top) and loud."""
    samples = np.frombuffer(audio, dtype="<i2")
    assert len(audio) % 2 == 0 and spoken_s * 0.8 <= len(samples) / rate <= spoken_s + 2.5, (len(samples), rate)
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300


def check_azure(vendors: VendorStack, user: str, *, answer_in: str | None = None) -> None:
    [chat] = vendors.azure.requests
    assert chat.path == "/openai/deployments/prod-mini/chat/completions"  # the seed's model, mapped
    assert chat.query == {"api-version": "2024-10-21"} and chat.headers["api-key"] == vendors.azure.api_key
    assert chat.body["stream"] is True and chat.body["messages"][-1] == {"role": "user", "content": user}
    system = chat.body["messages"][0]
    assert system["role"] == "system" and "<agent_prompt>" in system["content"]
    if answer_in:
        assert system["content"].endswith(f"Answer in {answer_in}.")


async def test_web_call_on_the_seed_agent_deepgram_azure_elevenlabs(api: Api, fresh: VendorStack,
                                                                    tmp_path: Path) -> None:
    """The seed's create body verbatim; the caller's speech reaches Deepgram at the web rate, Azure answers, and
    ElevenLabs' audio (the fake's 200 Hz tone) is what the caller hears."""
    agent_id = await agent_from(api, SEED_AGENT_CREATE)
    speech = caller_speech(SPOKEN, tmp_path)
    caller, [turn] = await web_call(api, agent_id, speech)
    record, _ = await api.follow(caller.call_id)

    assert (turn.user, turn.agent) == (HEARD, REPLY)
    check_record(record, {"stt": "DEEPGRAM", "llm": "AZURE", "tts": "ELEVENLABS"}, WELCOME, HEARD, REPLY)
    assert 190 <= tone_of(turn.audio) <= 210  # ElevenLabs' tone is what the caller heard

    vendors = fresh
    streams = [s for s in vendors.deepgram.sessions if s.audio]
    assert len(streams) == 1, [s.query for s in vendors.deepgram.sessions]
    [stream] = streams
    assert stream.headers["Authorization"] == f"Token {vendors.deepgram.api_key}"
    query = stream.query
    assert {k: query[k] for k in ("model", "encoding", "sample_rate", "channels", "interim_results")} == {
        "model": "nova-2", "encoding": "linear16", "sample_rate": "48000", "channels": "1",
        "interim_results": "true"}
    assert "endpointing" in query and "utterance_end_ms" in query
    assert "language" not in query  # enable_lid_detection: the first utterance goes without a language
    check_linear16(bytes(stream.audio), 48000, spoken_s=len(speech) / 48000 - 1)
    assert stream.messages[0] == "Finalize" and stream.messages[-1] == "CloseStream", stream.messages
    assert set(stream.messages) <= {"Finalize", "KeepAlive", "CloseStream"}
    check_azure(vendors, HEARD)

    speech = [r for r in vendors.elevenlabs.requests if r.path.endswith("/stream")]
    assert {r.path for r in speech} == {"/v1/text-to-speech/riya0000000000000001/stream"}  # "Riya Rao" resolved
    assert " ".join(r.body["text"] for r in speech) == f"{WELCOME} {REPLY}"  # sentence by sentence
    assert all(r.headers["xi-api-key"] == vendors.elevenlabs.api_key for r in speech)
    assert {r.query["output_format"] for r in speech} == {"pcm_48000"}  # the web leg's rate: no resampling hop
    assert {r.body["model_id"] for r in speech} == {"eleven_flash_v2_5"}

    [usage] = events(record, "usage")
    used = usage["providers"]
    assert 1.5 <= used["DEEPGRAM"]["stt_audio_s"] <= 10
    assert used["ELEVENLABS"]["tts_characters"] == sum(len(r.body["text"]) for r in speech)
    assert used["AZURE"]["prompt_tokens"] == 42 and used["AZURE"]["completion_tokens"] == 7
    [timing] = events(record, "timing")
    assert timing["usage"]["AZURE"]["prompt_tokens"] == 42


PHONE_CALL = stream_after(2500) + callee_bye(6500)


async def phone_call(api: Api, workdir: Path, agent_id: str) -> tuple[dict[str, Any], np.ndarray, float]:
    """The agent calls sipp, which answers, speaks after the welcome and hangs up: the record, the recording's
    two channels (caller left, agent right) at 8 kHz, and how long the callee spoke."""
    spoken_s = len(caller_speech(SPOKEN, workdir)) / 48000 - 1
    sipp = await start_sipp(workdir, scenario(workdir, "vendors", PHONE_CALL))
    call_id = await dial_sipp(api, agent_id, sipp)
    record, _ = await api.follow(call_id)
    assert await sipp.wait() == 0, sipp.explain()
    recording = await api.request("GET", f"/calls/{call_id}/recording")
    assert recording.status_code == 200
    (workdir / "recording.wav").write_bytes(recording.content)
    channels, rate = read_wav_channels(workdir / "recording.wav")
    assert rate == 8000
    return record, channels, spoken_s


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_phone_call_on_the_seed_agent_deepgram_azure_elevenlabs(api: Api, fresh: VendorStack,
                                                                      tmp_path: Path) -> None:
    """At the phone's 8 kHz: Deepgram and ElevenLabs work at the leg's own rate."""
    agent_id = await agent_from(api, SEED_AGENT_CREATE)
    record, channels, spoken_s = await phone_call(api, tmp_path, agent_id)
    check_record(record, {"stt": "DEEPGRAM", "llm": "AZURE", "tts": "ELEVENLABS"}, WELCOME, HEARD, REPLY)
    assert 190 <= tone_of(channels[:, 1], 8000) <= 210  # what the callee was sent: ElevenLabs' tone
    vendors = fresh
    [stream] = [s for s in vendors.deepgram.sessions if s.audio]
    assert stream.query["sample_rate"] == "8000" and stream.query["encoding"] == "linear16"
    check_linear16(bytes(stream.audio), 8000, spoken_s=spoken_s)
    assert stream.messages[-1] == "CloseStream"
    check_azure(vendors, HEARD)
    speech = [r for r in vendors.elevenlabs.requests if r.path.endswith("/stream")]
    assert " ".join(r.body["text"] for r in speech) == f"{WELCOME} {REPLY}"
    assert {r.query["output_format"] for r in speech} == {"pcm_8000"}


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_phone_call_on_azure_and_sarvam_in_hindi(api: Api, fresh: VendorStack, tmp_path: Path) -> None:
    """The seed's update body (Sarvam transcription) with its placeholders filled, Azure for the model and a
    Sarvam voice, `language: hi-IN` and no detection: Sarvam hears in Hindi from the first utterance, the model
    is told to answer in Hindi, Sarvam speaks Hindi at the phone's rate."""
    vendors = fresh
    body = copy.deepcopy(SEED_AGENT_UPDATE)
    body.update(name="Hindi support", welcome_message="नमस्ते", language="hi-IN", lid_allowed_languages=[],
                model={"provider": "AZURE", "model": "gpt-4.1-mini"}, voice={"provider": "SARVAM", "name": "anushka"})
    vendors.azure.script.clear()
    vendors.azure.add_text("आपका ऑर्डर कल आएगा।")
    agent_id = await agent_from(api, body)
    record, channels, spoken_s = await phone_call(api, tmp_path, agent_id)

    transcript = vendors.sarvam.transcript
    check_record(record, {"stt": "SARVAM", "llm": "AZURE", "tts": "SARVAM"}, "नमस्ते", transcript,
                 "आपका ऑर्डर कल आएगा।")
    # hi-IN from the start: the agent's language, not a detection
    assert events(record, "language_switch") == [{"from": None, "to": "hi-IN", "source": "agent"}]
    assert 190 <= tone_of(channels[:, 1], 8000) <= 210  # Sarvam's audio
    [stt] = [r for r in vendors.sarvam.requests if r.path == "/speech-to-text"]
    assert stt.headers["api-subscription-key"] == vendors.sarvam.api_key
    assert stt.body["model"] == "saaras:v3" and stt.body["language_code"] == "hi-IN"
    with wave.open(io.BytesIO(stt.files["file"])) as wav:  # the utterance as a 16 kHz mono PCM16 WAV
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        check_linear16(wav.readframes(wav.getnframes()), 16000, spoken_s=spoken_s)
    speech = [r for r in vendors.sarvam.requests if r.path == "/text-to-speech"]
    assert " ".join(r.body["text"] for r in speech) == "नमस्ते आपका ऑर्डर कल आएगा।"
    assert {(r.body["speaker"], r.body["target_language_code"], r.body["speech_sample_rate"]) for r in speech} == {
        ("anushka", "hi-IN", 8000)}
    check_azure(vendors, transcript, answer_in="Hindi")
    used = events(record, "usage")[0]["providers"]
    assert used["SARVAM"]["stt_audio_s"] > 1
    assert used["SARVAM"]["tts_characters"] == sum(len(r.body["text"]) for r in speech)
