"""The call's language through the real server, the agent speaking with the local voice (espeak-ng) and hearing
and thinking through the vendors' fakes (Deepgram, Azure): a caller Deepgram identifies as Hindi pivots an
agent with language detection to Hindi (the switch on the timeline, the model told to answer in Hindi,
espeak-ng's `hi` voice, the STT stream in Hindi); an agent whose `language` is `hi-IN` does all that from
the start. One server for the module.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sipp.harness import HAVE_SPEECH_TOOLS
from test_e2e_sip_calls import Api
from vendor_fakes.live import (
    agent_from,
    api,  # noqa: F401  (a module fixture)
    caller_speech,
    events,
    loud_seconds,
    turns,
    vendors,  # noqa: F401  (a module fixture)
    web_call,
)
from vendor_fakes.stack import VendorStack

from agent_runtime.providers.espeak import EspeakTTS

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox make the caller's speech"),
]

HINDI = "मेरा ऑर्डर कहाँ है"  # what the Deepgram fake hears, reporting the language "hi"
ANSWER = "आपका ऑर्डर कल आएगा।"  # what the Azure fake answers
LOCAL_VOICE = {"provider": "ESPEAK", "name": "en-us"}


@pytest.fixture
def fresh(vendors: VendorStack) -> VendorStack:
    vendors.reset()
    vendors.deepgram.transcripts = [HINDI]
    vendors.azure.default_text = ANSWER
    return vendors


@pytest.fixture
def spoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(voice, text) of every sentence the server's espeak-ng voices speak (the server runs in this process)."""
    said: list[tuple[str, str]] = []
    synthesize = EspeakTTS.synthesize

    def recorded(self: EspeakTTS, text: str, *, speed: float | None = None) -> Any:
        said.append((self.voice, text))
        return synthesize(self, text, speed=speed)

    monkeypatch.setattr(EspeakTTS, "synthesize", recorded)
    yield said


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return caller_speech("Where is my order?", tmp_path_factory.mktemp("speech"))


async def test_a_caller_deepgram_hears_as_hindi_pivots_a_detecting_agent_to_hindi(
        api: Api, fresh: VendorStack, spoken: list[tuple[str, str]], speech: np.ndarray) -> None:
    vendors = fresh
    vendors.deepgram.language = "hi"
    agent_id = await agent_from(api, {
        "name": "Detects", "welcome_message": "Hello.", "agent_prompt": "You are a shop assistant.",
        "language": "en-US", "enable_lid_detection": True, "lid_allowed_languages": ["hi", "en"],
        "model": {"provider": "AZURE", "model": "gpt-4.1-mini"}, "voice": LOCAL_VOICE,
        "transcription": {"provider": "DEEPGRAM", "model": "nova-2"}})
    caller, heard = await web_call(api, agent_id, speech, turns=2)
    record, _ = await api.follow(caller.call_id)

    assert [(turn.user, turn.agent) for turn in heard] == [(HINDI, ANSWER)] * 2
    assert all(loud_seconds(turn.audio) >= 0.5 for turn in heard)  # the Hindi answers were heard
    assert record["status"] == "completed" and turns(record, "agent") == ["Hello.", ANSWER, ANSWER]
    assert events(record, "language_switch") == [{"from": "en-US", "to": "hi", "source": "DEEPGRAM"}]
    assert spoken[0] == ("en-us", "Hello.")  # welcomed in the agent's language
    answers = spoken[1:]  # by espeak-ng's Hindi voice
    assert {voice for voice, _ in answers} == {"hi"} and " ".join(text for _, text in answers) == f"{ANSWER} {ANSWER}"
    for chat in vendors.azure.requests:
        assert chat.body["messages"][0]["content"].endswith("Answer in Hindi.")
        assert chat.body["messages"][-1] == {"role": "user", "content": HINDI}
    queries = [s.query for s in vendors.deepgram.sessions if s.audio]
    assert "language" not in queries[0]  # the first utterance went without a language, to be identified
    assert [q.get("language") for q in queries[1:]] == ["hi"], queries  # the next turn's stream is in Hindi
    for timing in events(record, "timing"):
        assert timing["served_by"] == {"stt": "DEEPGRAM", "llm": "AZURE", "tts": "ESPEAK"}


async def test_an_agent_in_hindi_hears_thinks_and_speaks_hindi_from_the_start(
        api: Api, fresh: VendorStack, spoken: list[tuple[str, str]], speech: np.ndarray) -> None:
    vendors = fresh
    agent_id = await agent_from(api, {
        "name": "Hindi", "welcome_message": "नमस्ते", "agent_prompt": "You are a shop assistant.",
        "language": "hi-IN", "enable_lid_detection": False,
        "model": {"provider": "AZURE", "model": "gpt-4.1-mini"}, "voice": LOCAL_VOICE,
        "transcription": {"provider": "DEEPGRAM", "model": "nova-2"}})
    caller, [turn] = await web_call(api, agent_id, speech)
    record, _ = await api.follow(caller.call_id)

    assert (turn.user, turn.agent) == (HINDI, ANSWER)
    assert loud_seconds(turn.audio) >= 0.5
    assert turns(record, "agent") == ["नमस्ते", ANSWER]
    assert events(record, "language_switch") == [{"from": None, "to": "hi-IN", "source": "agent"}]
    assert {voice for voice, _ in spoken} == {"hi"}, spoken  # the welcome too
    [chat] = vendors.azure.requests
    assert chat.body["messages"][0]["content"].endswith("Answer in Hindi.")
    assert {s.query.get("language") for s in vendors.deepgram.sessions} == {"hi-IN"}
