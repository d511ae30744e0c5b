"""What shapes one conversation: the agent's seed fields plus the provider instances.

The control API builds it from the stored agent with `AgentConfig.from_agent(fields, stt=…, llm=…, tts=…)`.
Null seed fields take the defaults below. Durations are milliseconds, as in the seed; a duration of 0
turns that behaviour off (no silence alert, no silence hang-up, mic open at once).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from agent_runtime.providers.base import (
    LanguageModel,
    SpeechToText,
    TextToSpeech,
    VoiceActivityDetector,
)

DEFAULT_SILENCE_ALERT = "Are you still there?"
DEFAULT_ERROR_MESSAGE = "Sorry, I had a problem."


@dataclass
class AgentConfig:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    # None: the conversation makes a WebRTC VAD at the leg's own rate (no resampling before the VAD).
    vad: VoiceActivityDetector | None = None

    welcome_message: str | None = None
    inbound_welcome_message: str | None = None  # inbound calls; falls back to welcome_message
    agent_prompt: str = "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
    temperature: float | None = None
    top_p: float | None = None
    speed: float | None = None  # TTS speed factor, 1.0 = normal
    language: str | None = None
    silence_alert_message: str | None = DEFAULT_SILENCE_ALERT
    call_user_alert_duration: int = 7000  # ms of caller silence before the alert
    call_end_duration: int = 30000  # ms of caller silence before hanging up (reason silence_timeout)
    initial_disable_mic_duration: int = 0  # ms of caller audio ignored at the start
    endpointing_ms: int = 500  # non-speech that ends the caller's turn

    # Turn-taking and pipeline knobs (not seed fields).
    preroll_ms: int = 300  # audio kept from before the detected speech start
    speech_start_frames: int = 3  # voiced frames among the last `speech_start_window` that start speech
    speech_start_window: int = 4
    max_utterance_ms: int = 30000
    partial_interval_ms: int = 1000  # re-run STT on the growing utterance at most this often (0: off)
    # Start the final transcription at the caller's first pause (TAIL_MS into the silence) instead of after
    # the endpointing wait; used when the turn ends with no more speech, dropped when speech resumes. Only
    # with an STT that declares `speculative = True` (local Whisper: its ~0.5 s then hides in the wait).
    speculative_stt: bool = True
    # When that transcript is ready before the turn ended, start the reply on it too (LLM and TTS), its audio
    # and tool calls held until the turn ends; only with an LLM that declares `speculative = True` (local
    # models: a discarded start costs CPU, not money).
    speculative_reply: bool = True
    max_tool_rounds: int = 5
    max_history_messages: int = 60
    error_message: str | None = DEFAULT_ERROR_MESSAGE

    # Failure is normal (conversation/stages.py). A turn's reply must have its first LLM token within
    # `turn_deadline_ms` of the request, fallback included; each stage's first result (an STT transcript,
    # the LLM's first token, a sentence's first audio) within `stage_timeout_ms` before its fallback takes
    # over. The fallbacks are the agent's `model.fallback` / `voice.fallback` / `transcription.fallback`
    # (provider instances; None: no fallback). With none, or when it fails too, the caller hears
    # `error_message` from `local_tts` (the server's local voice; None: espeak-ng when installed, else the
    # agent's own voice) and the call goes on.
    turn_deadline_ms: int = 15000
    stage_timeout_ms: int = 8000
    stt_fallback: SpeechToText | None = None
    llm_fallback: LanguageModel | None = None
    tts_fallback: TextToSpeech | None = None
    local_tts: TextToSpeech | None = None

    # Languages (conversation/language.py). `language` ("en-US", "hi-IN") is given to STT and TTS and, when
    # it is not English, to the LLM as an instruction. With `enable_lid_detection` the caller's language is
    # identified from their first utterances among `lid_allowed_languages` ("hi", "en"; empty: any) and the
    # agent switches to it.
    enable_lid_detection: bool = False
    lid_allowed_languages: list[str] = field(default_factory=list)

    @classmethod
    def from_agent(cls, agent: Mapping[str, Any], **providers: Any) -> AgentConfig:
        """Build from the seed's agent fields (unknown fields ignored, nulls take the defaults)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in agent.items() if k in names and v is not None}
        values.update(providers)
        return cls(**values)

    def welcome_for(self, direction: str) -> str | None:
        if direction == "inbound" and self.inbound_welcome_message:
            return self.inbound_welcome_message
        return self.welcome_message
