"""Model files the operator supplies by path: a GGUF (LOCAL), a Piper voice (PIPER), a Whisper folder (WHISPER).

The bundled files, linked into a temporary folder under other names, stand in for the operator's own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent_runtime.providers import piper, whisper
from agent_runtime.providers.base import TextDelta
from agent_runtime.providers.catalog import LOCAL_LLM, PIPER_VOICE, build_registry
from agent_runtime.providers.local_llm import available, model_file
from agent_runtime.providers.piper_worker import voice_model_path

pytestmark = [pytest.mark.models, pytest.mark.asyncio]


def names(registry: object, kind: str, provider: str) -> list[str]:
    return [e.name for e in registry.catalog(kind) if e.provider == provider]  # type: ignore[attr-defined]


@pytest.mark.skipif(not available(), reason="the embedded SmolLM2 model is not installed")
async def test_a_gguf_by_path_is_a_local_model_named_after_its_file(tmp_path: Path) -> None:
    gguf = tmp_path / "acme-assistant-q4.gguf"
    gguf.symlink_to(model_file(LOCAL_LLM))
    registry = await build_registry(mode="local", llm_model_path=str(gguf))

    assert names(registry, "llm", "LOCAL") == ["acme-assistant-q4", LOCAL_LLM]
    assert registry.defaults["llm"] == ("LOCAL", "acme-assistant-q4")
    llm = registry.create("llm")
    reply = "".join([c.text async for c in llm.stream([{"role": "user", "content": "Say hello."}])
                     if isinstance(c, TextDelta)])
    assert reply.strip()
    assert registry.create("llm", "LOCAL", LOCAL_LLM)._engine is not llm._engine  # type: ignore[attr-defined]


async def test_a_missing_gguf_leaves_the_packaged_model(tmp_path: Path) -> None:
    registry = await build_registry(mode="local", llm_model_path=str(tmp_path / "gone.gguf"))
    assert "gone" not in names(registry, "llm", "LOCAL")


def linked_voice(tmp_path: Path, name: str) -> Path:
    """The packaged joe voice under another file name, its config beside it."""
    joe = voice_model_path(PIPER_VOICE)
    voice = tmp_path / name
    voice.symlink_to(joe)
    Path(str(voice) + ".json").symlink_to(joe + ".json")
    return voice


async def test_a_piper_voice_by_path_is_a_voice_named_after_its_file(tmp_path: Path) -> None:
    voice = linked_voice(tmp_path, "en_GB-operator-medium.onnx")
    registry = await build_registry(mode="local", piper_voice_path=str(voice))

    assert names(registry, "tts", "PIPER") == ["en_GB-operator-medium", PIPER_VOICE]
    assert registry.defaults["tts"] == ("PIPER", "en_GB-operator-medium")
    tts = registry.create("tts")
    try:
        audio = np.concatenate([c async for c in tts.synthesize("Your order ships today.")])
        assert len(audio) > tts.sample_rate // 2
        assert tts.worker_pid != registry.create("tts", "PIPER", PIPER_VOICE).worker_pid
    finally:
        await piper.shutdown_workers()


async def test_a_piper_voice_without_its_config_is_not_offered(tmp_path: Path) -> None:
    voice = tmp_path / "lonely.onnx"
    voice.symlink_to(voice_model_path(PIPER_VOICE))
    registry = await build_registry(mode="local", piper_voice_path=str(voice))
    assert names(registry, "tts", "PIPER") == [PIPER_VOICE]


def whisper_folder(tmp_path: Path, name: str, vocabulary_size: int) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "vocabulary.txt").write_text("".join(f"t{i}\n" for i in range(vocabulary_size)))
    return str(folder)


async def test_a_whisper_folder_is_multilingual_by_its_vocabulary_not_its_name(tmp_path: Path) -> None:
    assert whisper.is_multilingual(whisper_folder(tmp_path, "whisper-small.en", 51865))
    assert not whisper.is_multilingual(whisper_folder(tmp_path, "my-model", 51864))
    assert not whisper.is_multilingual(str(tmp_path / "no-vocabulary.en"))
    assert whisper.is_multilingual(str(tmp_path / "no-vocabulary"))
    assert not whisper.is_multilingual(None)  # the bundled tiny.en
    stt = whisper.WhisperSTT(whisper_folder(tmp_path, "large-v3", 51866), language=None)
    assert stt.multilingual  # so the call's language identification lets it detect the language


def linked_whisper(tmp_path: Path, name: str) -> Path:
    """The bundled tiny.en folder under another name."""
    folder = tmp_path / name
    folder.mkdir()
    for item in Path(whisper.default_model_path()).iterdir():
        (folder / item.name).symlink_to(item)
    return folder


async def test_an_english_only_whisper_folder_by_path_says_so_in_the_catalog(tmp_path: Path) -> None:
    folder = linked_whisper(tmp_path, "my-whisper")
    registry = await build_registry(mode="local", whisper_model_path=str(folder))
    [entry] = registry.catalog("stt")[:1]
    assert (entry.provider, entry.name, entry.language) == ("WHISPER", "my-whisper", "ENGLISH")
    assert entry.extra["language_identification"] is False
