"""The call's language on virtual time: `language` from the start, and identification that pivots STT, TTS
and the LLM's instructions, with the switch on the timeline."""
from __future__ import annotations

import numpy as np
from conversation_fakes import LanguageTTS, StreamingFakeSTT
from test_conversation_machine import Harness, silence, speech, virtual

from agent_runtime.providers.espeak import EspeakTTS
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.updates import LanguageSwitch

HINDI = "मेरा ऑर्डर कहाँ है"


def turn() -> np.ndarray:
    return np.concatenate((speech(0.8), silence(0.8)))


def system_prompt(llm: FakeLLM, request: int = 0) -> str:
    return str(llm.requests[request]["messages"][0]["content"])


class LanguageSTT(FakeSTT):
    language: str | None = None


@virtual
async def test_a_detected_hindi_caller_pivots_stt_tts_and_the_instructions() -> None:
    stt, tts, llm = StreamingFakeSTT(HINDI, reported_language="hi"), LanguageTTS(), FakeLLM()
    h = Harness(stt=stt, tts=tts, llm=llm, language="en-US", enable_lid_detection=True,
                lid_allowed_languages=["hi", "en"])
    await h.leg.feed(turn())
    await h.wait_final("agent")
    await h.wait_listening()
    assert stt.streams[0].language is None  # identification: the recogniser was given no language
    assert system_prompt(llm).endswith("Answer in Hindi.")  # the reply to that very turn is in Hindi
    assert stt.language == "hi" and tts.language == "hi"
    await h.leg.feed(turn())
    await h.wait_final("agent", 2)
    assert [s.language for s in stt.streams] == [None, "hi"]  # the next utterance's stream speaks Hindi
    await h.finish()
    switches = [u for u in h.taken_updates() if isinstance(u, LanguageSwitch)]
    assert switches == [LanguageSwitch("en-US", "hi", "STREAMFAKE")]


@virtual
async def test_a_language_outside_the_allowed_ones_does_not_switch() -> None:
    stt, llm = StreamingFakeSTT("bonjour", reported_language="fr"), FakeLLM()
    h = Harness(stt=stt, llm=llm, language="en-US", enable_lid_detection=True, lid_allowed_languages=["hi", "en"])
    await h.leg.feed(turn())
    await h.wait_final("agent")
    assert "Answer in" not in system_prompt(llm)
    await h.finish()
    assert not [u for u in h.taken_updates() if isinstance(u, LanguageSwitch)]


@virtual
async def test_hindi_from_the_start_without_detection() -> None:
    stt, tts, llm = LanguageSTT(HINDI), LanguageTTS(), FakeLLM()
    h = Harness(stt=stt, tts=tts, llm=llm, language="hi-IN")
    await h.leg.feed(turn())
    await h.wait_final("agent")
    assert stt.language == "hi-IN" and tts.language == "hi-IN"
    assert system_prompt(llm).endswith("Answer in Hindi.")
    await h.finish()
    switches = [u for u in h.taken_updates() if isinstance(u, LanguageSwitch)]
    assert switches == [LanguageSwitch(None, "hi-IN", "agent")]


@virtual
async def test_english_keeps_the_prompt_as_written() -> None:
    llm = FakeLLM()
    h = Harness(llm=llm, language="en-US", agent_prompt="You are a shop assistant.")
    await h.leg.feed(turn())
    await h.wait_final("agent")
    assert system_prompt(llm) == "You are a shop assistant."
    await h.finish()


class EnglishOnlyVoice(FakeTTS):
    vendor = "PIPER"  # a local voice that takes no language


@virtual
async def test_an_english_only_local_voice_gives_way_to_espeaks_voice_of_the_language() -> None:
    voice = EnglishOnlyVoice()
    h = Harness(tts=voice, language="hi-IN", welcome_message=None)
    tts = h.conversation.stages.tts
    h.conversation.stages.language.start()
    assert isinstance(tts.primary, EspeakTTS) and tts.primary.voice == "hi"
    h.conversation.stages.language.heard("en", "TEST")  # no detection: nothing changes
    assert isinstance(tts.primary, EspeakTTS)
    await h.finish()


class DetectingSTT(FakeSTT):
    """A per-utterance recogniser that reports the language it heard (as Sarvam, or a multilingual Whisper)."""

    vendor = "DETECTING"
    multilingual = True

    def __init__(self, transcript: str, detected: str) -> None:
        super().__init__(transcript)
        self.language: str | None = "en-US"
        self.detected_language: str | None = None
        self.languages_asked: list[str | None] = []
        self._detected = detected

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        self.languages_asked.append(self.language)
        self.detected_language = self._detected
        return await super().transcribe(audio, final=final)


@virtual
async def test_a_per_utterance_recogniser_that_reports_the_language_pivots_too() -> None:
    stt, tts, llm = DetectingSTT(HINDI, "hi-IN"), LanguageTTS(), FakeLLM()
    h = Harness(stt=stt, tts=tts, llm=llm, language="en-US", enable_lid_detection=True,
                lid_allowed_languages="hi,en".split(","))
    await h.leg.feed(turn())
    await h.wait_final("agent")
    await h.wait_listening()
    await h.leg.feed(turn())
    await h.wait_final("agent", 2)
    assert stt.languages_asked == [None, "hi"]  # identification first, then the identified language
    assert tts.language == "hi" and system_prompt(llm, 1).endswith("Answer in Hindi.")
    await h.finish()
    assert LanguageSwitch("en-US", "hi", "DETECTING") in h.taken_updates()
