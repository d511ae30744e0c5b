"""build_registry lists what is installed and configured, with the right defaults, in both modes."""
from __future__ import annotations

import shutil

import pytest

from agent_runtime.providers.base import LanguageModel, ProviderError, SpeechToText, TextToSpeech
from agent_runtime.providers.catalog import build_registry
from agent_runtime.providers.openai_compat import OpenAICompatLLM
from openai_fake import OpenAIFake, openai_fake  # noqa: F401  (fixture)


def names(registry, kind: str) -> set[tuple[str, str]]:
    return {(e.provider, e.name) for e in registry.catalog(kind)}


async def test_local_mode_lists_the_embedded_stack() -> None:
    registry = await build_registry(mode="local")
    assert ("WHISPER", "tiny.en") in names(registry, "stt")
    assert ("LOCAL", "smollm2-135m-instruct") in names(registry, "llm")
    piper = [e for e in registry.catalog("tts") if e.provider == "PIPER"]
    assert [(e.name, e.language, e.gender) for e in piper] == [("joe", "ENGLISH", "MALE")]
    if shutil.which("espeak-ng"):
        espeak = {e.name for e in registry.catalog("tts") if e.provider == "ESPEAK"}
        assert {"en-us", "en-gb"} <= espeak
    assert {("FAKE", "scripted")} <= names(registry, "stt")
    assert {("FAKE", "echo")} <= names(registry, "llm")
    assert {("FAKE", "tone")} <= names(registry, "tts")
    assert not any(e.provider == "OPENAI" for e in registry.catalog("llm"))
    assert registry.defaults == {"stt": ("WHISPER", "tiny.en"), "llm": ("LOCAL", "smollm2-135m-instruct"),
                                 "tts": ("PIPER", "joe")}
    local = next(e for e in registry.catalog("llm") if e.provider == "LOCAL")
    assert local.extra["tools"] is False


async def test_factories_build_protocol_instances_without_loading_models() -> None:
    registry = await build_registry(mode="local")
    assert isinstance(registry.create("stt"), SpeechToText)
    assert isinstance(registry.create("llm"), LanguageModel)
    tts = registry.create("tts")
    assert isinstance(tts, TextToSpeech) and tts.sample_rate == 22050
    assert tts.worker_pid is None  # the Piper worker starts on first use, not on create
    if shutil.which("espeak-ng"):
        assert registry.create("tts", "ESPEAK", "en-gb").voice == "en-gb"
    with pytest.raises(ProviderError):
        registry.create("tts", "PIPER", "nobody")
    with pytest.raises(ProviderError):
        registry.create("llm", "OPENAI", "gpt-4o")


async def test_fake_mode_defaults_to_fake_and_keeps_the_rest_choosable() -> None:
    registry = await build_registry(mode="fake")
    assert registry.defaults == {"stt": ("FAKE", "scripted"), "llm": ("FAKE", "echo"), "tts": ("FAKE", "tone")}
    assert isinstance(registry.create("stt"), SpeechToText)
    assert isinstance(registry.create("llm"), LanguageModel)
    assert isinstance(registry.create("tts"), TextToSpeech)
    assert ("WHISPER", "tiny.en") in names(registry, "stt")
    assert ("LOCAL", "smollm2-135m-instruct") in names(registry, "llm")


async def test_openai_endpoint_models_are_listed_and_the_first_is_default(openai_fake: OpenAIFake) -> None:
    openai_fake.models = ["llama3.2:1b", "qwen2.5:0.5b"]
    registry = await build_registry(mode="local", openai_base_url=openai_fake.base_url,
                                    openai_api_key=openai_fake.api_key, openai_timeout=7.0)
    openai = [e.name for e in registry.catalog("llm") if e.provider == "OPENAI"]
    assert openai == ["llama3.2:1b", "qwen2.5:0.5b"]
    assert registry.defaults["llm"] == ("OPENAI", "llama3.2:1b")
    llm = registry.create("llm", "OPENAI", "qwen2.5:0.5b")
    assert isinstance(llm, OpenAICompatLLM)
    assert (llm.model, llm.base_url, llm.api_key, llm.timeout) == (
        "qwen2.5:0.5b", openai_fake.base_url, openai_fake.api_key, 7.0)
    chunks = [c async for c in llm.stream([{"role": "user", "content": "hi"}])]
    assert "".join(c.text for c in chunks) == openai_fake.default_text
    assert openai_fake.requests[0].headers["authorization"] == f"Bearer {openai_fake.api_key}"
    # fake mode still lists the endpoint's models for agents that choose them
    fake_mode = await build_registry(mode="fake", openai_base_url=openai_fake.base_url)
    assert fake_mode.defaults["llm"] == ("FAKE", "echo")
    assert ("OPENAI", "llama3.2:1b") in names(fake_mode, "llm")


async def test_unreachable_openai_endpoint_means_no_entries(caplog: pytest.LogCaptureFixture) -> None:
    fake = OpenAIFake()
    await fake.start()
    base_url = fake.base_url
    await fake.stop()
    registry = await build_registry(mode="local", openai_base_url=base_url, openai_timeout=3.0)
    assert not any(e.provider == "OPENAI" for e in registry.catalog("llm"))
    assert registry.defaults["llm"] == ("LOCAL", "smollm2-135m-instruct")
    assert "unreachable" in caplog.text


async def test_custom_whisper_model_path_is_listed_by_its_folder_name(tmp_path) -> None:
    model_dir = tmp_path / "distil-small.en"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes(b"")
    registry = await build_registry(mode="local", whisper_model_path=str(model_dir))
    assert ("WHISPER", "distil-small.en") in names(registry, "stt")
    assert registry.create("stt").model_path == str(model_dir)
    missing = await build_registry(mode="local", whisper_model_path=str(tmp_path / "nothing-here"))
    assert not any(e.provider == "WHISPER" for e in missing.catalog("stt"))
    assert missing.defaults["stt"] == ("FAKE", "scripted")
