"""The call's language: given to STT, TTS and the LLM, and switched when the caller's is identified.

`language` ("en-US", "hi-IN") is set on the STT and TTS providers that take one (`language` attribute) and,
when it is not English, the LLM's system prompt ends with "Answer in <language>." (English prompts stay as
written). A voice that cannot take a language (Piper's English voice) is replaced by espeak-ng's voice for
it, offline (`hi`, `bn`, `ta`, … see providers/espeak.py); going back to English gives the agent's own voice
back.

Identification (`enable_lid_detection`): for the caller's first `LID_UTTERANCES` utterances, the STT runs
without a language where it can detect one (a multilingual model: a vendor, or a multilingual Whisper
folder; English-only Whisper cannot), and the language it reports for a transcript (`detected_language`:
the streaming recogniser's, or the provider's) that is among `lid_allowed_languages` (any when empty) and
not the current one switches the call to it before the reply to that transcript starts. Each switch is a
`LanguageSwitch` update for the timeline (source `agent` for a non-English `language` from the start, else
the provider that detected it).
"""
from __future__ import annotations

import asyncio
import logging

from agent_runtime.agent_config import DEFAULT_ERROR_MESSAGE, AgentConfig
from agent_runtime.conversation.guarded import GuardedSTT, GuardedTTS
from agent_runtime.conversation.usage import vendor_of
from agent_runtime.providers import espeak
from agent_runtime.providers.base import TextToSpeech
from agent_runtime.providers.remote import base_language
from agent_runtime.updates import LanguageSwitch, Update

log = logging.getLogger(__name__)

LID_UTTERANCES = 3
NAMES = {
    "en": "English", "hi": "Hindi", "bn": "Bengali", "gu": "Gujarati", "kn": "Kannada", "ml": "Malayalam",
    "mr": "Marathi", "pa": "Punjabi", "ta": "Tamil", "te": "Telugu", "ur": "Urdu", "or": "Odia",
    "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian", "ar": "Arabic",
}
APOLOGIES = {  # the default error message in the caller's language, where we have one
    "hi": "माफ़ कीजिए, मुझे एक समस्या हुई।",
}
ESPEAK_VOICES = {"en": "en-us"}  # espeak-ng voice ids that are not the language code itself


def is_english(language: str | None) -> bool:
    return base_language(language) in (None, "en")


class CallLanguage:
    def __init__(self, config: AgentConfig, stt: GuardedSTT, tts: GuardedTTS,
                 updates: asyncio.Queue[Update]) -> None:
        self.config = config
        self.stt, self.tts = stt, tts
        self.updates = updates
        self.current: str | None = config.language
        self.allowed = {base_language(code) for code in config.lid_allowed_languages}
        self.detecting = config.enable_lid_detection
        self._heard = 0
        self._agent_voice = tts.primary  # given back when the call goes back to English

    def start(self) -> None:
        """At call start: the agent's language everywhere, or auto-detection in the STT."""
        if self.detecting:
            for stt in self.stt.providers:
                if hasattr(stt, "language") and getattr(stt, "multilingual", True):
                    stt.language = None  # the provider detects it
        elif self.current is not None:  # None: the providers keep their own setting
            self._set_stt(self.current)
        if self.current is not None:
            self._set_tts(self.current)
        if self.current is not None and not is_english(self.current):
            self.updates.put_nowait(LanguageSwitch(None, self.current, "agent"))

    def heard(self, reported: str | None, source: str) -> None:
        """A transcript with text came; `reported` is the language its provider detected (None: not told)."""
        if not self.detecting:
            return
        self._heard += 1
        if self._heard >= LID_UTTERANCES:
            self.detecting = False
        code = base_language(reported)
        if code is None or (self.allowed and code not in self.allowed):
            if not self.detecting:
                self._set_stt(self.current)  # detection is over: the STT keeps the call's language
            return
        self.detecting = False
        if code != base_language(self.current):
            self.updates.put_nowait(LanguageSwitch(self.current, code, source))
            self.current = code
            self._set_tts(code)
        self._set_stt(self.current)

    def prompt(self, agent_prompt: str) -> str:
        """The system prompt with the language instruction (none for English)."""
        if is_english(self.current):
            return agent_prompt
        code = base_language(self.current) or ""
        return f"{agent_prompt}\n\nAnswer in {NAMES.get(code, self.current)}."

    def apology(self) -> str:
        """What the local voice says when a provider failed: the agent's `error_message` (the default one in
        the call's language where we have it)."""
        message = self.config.error_message or DEFAULT_ERROR_MESSAGE
        if message == DEFAULT_ERROR_MESSAGE:
            return APOLOGIES.get(base_language(self.current) or "", message)
        return message

    def local_voice(self) -> TextToSpeech:
        """The voice that apologises when providers fail: the server's local one (espeak-ng's voice of the
        call's language when that is not English: the local voice may speak English only), else espeak-ng,
        else the agent's own."""
        local = self.config.local_tts
        if espeak.available() and (local is None or not is_english(self.current)):
            return espeak.EspeakTTS(espeak_voice(self.current))
        return local or self._agent_voice

    def _set_stt(self, language: str | None) -> None:
        for stt in self.stt.providers:
            if hasattr(stt, "language"):
                stt.language = language

    def _set_tts(self, language: str | None) -> None:
        fallback = self.tts.fallback
        if fallback is not None and hasattr(fallback, "language"):
            fallback.language = language
        voice = self._agent_voice
        if hasattr(voice, "language"):  # vendors that take the language (ElevenLabs, Sarvam, …)
            voice.language = language
        elif isinstance(voice, espeak.EspeakTTS):
            voice.voice = espeak_voice(language)
        elif vendor_of(voice) != "FAKE" and not is_english(language) and espeak.available():
            self.tts.primary = espeak.EspeakTTS(espeak_voice(language))  # an English-only local voice
            return
        self.tts.primary = voice


def espeak_voice(language: str | None) -> str:
    code = base_language(language) or "en"
    return ESPEAK_VOICES.get(code, code)
