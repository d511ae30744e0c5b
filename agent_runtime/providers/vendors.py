"""The cloud vendors' part of the registry: each is registered only when its key (or URL) is configured.

- STT `DEEPGRAM` (`nova-2`, `nova-3`), `SARVAM` (`saarika:v2.5`, `saaras:v2`, `saaras:v3`), `OPENAI` (the
  models the operator lists for an OpenAI-compatible audio API);
- TTS `ELEVENLABS` (the account's voices, by name, from its voices API), `SARVAM` (bulbul speakers),
  `OPENAI` (the voices the operator lists);
- LLM `AZURE` (the configured deployments), `GROQ` (what Groq's `GET /models` lists).
A vendor that cannot be reached at start (ElevenLabs voices, Groq models) is logged and left out.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .base import CatalogEntry, ProviderError, ProviderRegistry
from .remote import Timeouts

log = logging.getLogger(__name__)

NOT_CHAT = ("whisper", "tts", "guard", "distil")  # model ids in an OpenAI-style /models that are not chat models


@dataclass(frozen=True)
class VendorConfig:
    """Keys, base URLs and options of the cloud vendors (None key: not configured)."""

    deepgram_api_key: str | None = None
    deepgram_base_url: str = "wss://api.deepgram.com"
    elevenlabs_api_key: str | None = None
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_flash_v2_5"
    sarvam_api_key: str | None = None
    sarvam_base_url: str = "https://api.sarvam.ai"
    sarvam_tts_model: str = "bulbul:v2"
    azure_api_key: str | None = None
    azure_base_url: str | None = None  # https://<resource>.openai.azure.com
    azure_api_version: str = "2024-10-21"
    azure_deployments: tuple[str, ...] = ()  # "model" or "model=deployment"
    groq_api_key: str | None = None
    groq_base_url: str = "https://api.groq.com/openai/v1"
    openai_audio_base_url: str | None = None  # an OpenAI-compatible /audio API
    openai_audio_api_key: str | None = None
    openai_stt_models: tuple[str, ...] = ()
    openai_tts_model: str = "tts-1"
    openai_tts_voices: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    llm_timeout: float = 30.0


def _add_deepgram(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import deepgram

    key = config.deepgram_api_key
    if not key:
        return
    for model in deepgram.MODELS:
        registry.add(CatalogEntry("stt", "DEEPGRAM", model, extra={"streaming": True}))
    registry.register("stt", "DEEPGRAM", lambda name: deepgram.DeepgramSTT(
        name, key, config.deepgram_base_url, timeouts=config.timeouts))


def _add_sarvam(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import sarvam

    key = config.sarvam_api_key
    if not key:
        return
    for model in sarvam.STT_MODELS:
        extra = {"output": "english"} if model in sarvam.TRANSLATING_MODELS else {}
        registry.add(CatalogEntry("stt", "SARVAM", model, extra=extra))
    registry.register("stt", "SARVAM", lambda name: sarvam.SarvamSTT(
        name, key, config.sarvam_base_url, timeouts=config.timeouts))
    for speaker, gender in sarvam.TTS_SPEAKERS.items():
        registry.add(CatalogEntry("tts", "SARVAM", speaker, gender=gender,
                                  extra={"model": config.sarvam_tts_model, "languages": "11 Indian languages"}))
    registry.register("tts", "SARVAM", lambda name: sarvam.SarvamTTS(
        name, key, config.sarvam_base_url, model=config.sarvam_tts_model, timeouts=config.timeouts))


async def _add_elevenlabs(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import elevenlabs

    key = config.elevenlabs_api_key
    if not key:
        return
    directory = elevenlabs.VoiceDirectory(key, config.elevenlabs_base_url, config.timeouts)
    try:
        voices = await directory.refresh()
    except ProviderError as exc:
        log.warning("ElevenLabs voices unavailable at start, no ELEVENLABS voices: %s", exc)
        return
    for voice in voices:
        registry.add(CatalogEntry("tts", "ELEVENLABS", voice.name, language=voice.language, gender=voice.gender,
                                  extra={"voice_id": voice.voice_id, "model": config.elevenlabs_model}))
    registry.register("tts", "ELEVENLABS", lambda name: elevenlabs.ElevenLabsTTS(
        name, directory, model_id=config.elevenlabs_model, timeouts=config.timeouts))


def _add_azure(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import azure_openai

    key, endpoint = config.azure_api_key, config.azure_base_url
    if not key or not endpoint:
        if key or endpoint:
            log.warning("AZURE needs both TALKWIRE_AZURE_API_KEY and TALKWIRE_AZURE_BASE_URL: not configured")
        return
    mapping = azure_openai.deployments(config.azure_deployments)
    for model, deployment in mapping.items():
        registry.add(CatalogEntry("llm", "AZURE", model, extra={"tools": True, "deployment": deployment}))
    registry.register("llm", "AZURE", lambda name: azure_openai.azure_llm(
        name, endpoint=endpoint, api_key=key, deployment_map=mapping, api_version=config.azure_api_version,
        timeout=config.llm_timeout))


async def _add_groq(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import groq, openai_compat

    key = config.groq_api_key
    if not key:
        return
    try:
        models = await openai_compat.list_models(config.groq_base_url, key, timeout=min(config.llm_timeout, 10.0))
    except ProviderError as exc:
        log.warning("Groq unreachable at start, no GROQ models: %s", exc)
        return
    for model in models:
        if any(word in model.lower() for word in NOT_CHAT):
            continue  # Groq's list holds its speech and moderation models too
        registry.add(CatalogEntry("llm", "GROQ", model, extra={"tools": True}))
    registry.register("llm", "GROQ", lambda name: groq.groq_llm(
        name, base_url=config.groq_base_url, api_key=key, timeout=config.llm_timeout))


def _add_openai_audio(registry: ProviderRegistry, config: VendorConfig) -> None:
    from . import openai_audio

    base_url, key = config.openai_audio_base_url, config.openai_audio_api_key
    if not base_url:
        return
    for model in config.openai_stt_models:
        registry.add(CatalogEntry("stt", "OPENAI", model))
    if config.openai_stt_models:
        registry.register("stt", "OPENAI", lambda name: openai_audio.OpenAISTT(
            name, base_url, key, timeouts=config.timeouts))
    for voice in config.openai_tts_voices:
        registry.add(CatalogEntry("tts", "OPENAI", voice, extra={"model": config.openai_tts_model,
                                                                 "sample_rate": openai_audio.PCM_RATE}))
    if config.openai_tts_voices:
        registry.register("tts", "OPENAI", lambda name: openai_audio.OpenAITTS(
            name, config.openai_tts_model, base_url, key, timeouts=config.timeouts))


async def add_vendors(registry: ProviderRegistry, config: VendorConfig) -> None:
    """Register every configured cloud vendor (none by default)."""
    _add_deepgram(registry, config)
    _add_sarvam(registry, config)
    _add_openai_audio(registry, config)
    await _add_elevenlabs(registry, config)
    _add_azure(registry, config)
    await _add_groq(registry, config)
