"""What the synthetic callers say: a script of turns made of deterministic audio, all 48 kHz mono int16.

Speech is made by espeak-ng (deterministic for a given text and voice, unlike Piper) once and cached as a
WAV under the cache folder, named by a hash of voice and text, so every run and every caller plays the same
samples. Noise is seeded white noise at a low level (a room, not a voice); silence is digital silence.

Turns, in the default script's order:
- `speech`   say a sentence, then wait for the agent's answer (response latency) and for it to finish;
- `silence`  say nothing for a while (the agent may use it for a silence alert);
- `noise`    play low background noise: a good VAD does not take it for a turn;
- `barge_in` say a sentence, and when the agent has been answering for a moment, talk over it
             (barge-in latency: from the first word spoken over the agent until its audio stops).
"""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.resample import resample
from media.wav import read_wav, write_wav

RATE = 48000
VOICE = "en-us"
SENTENCES = (
    "What time does the store open tomorrow?",
    "I would like to check the status of my order.",
    "Can you tell me more about your return policy?",
    "Please book a table for two at seven tonight.",
)
BARGE_SENTENCE = "Sorry, wait, I have another question."
NOISE_DBFS = -50.0


@dataclass(frozen=True)
class Turn:
    kind: str  # "speech" | "silence" | "noise" | "barge_in"
    text: str = ""  # what is said (speech, barge_in)
    seconds: float = 0.0  # how long (silence, noise)


DEFAULT_SCRIPT = (
    Turn("speech", SENTENCES[0]),
    Turn("silence", seconds=1.5),
    Turn("speech", SENTENCES[1]),
    Turn("noise", seconds=1.5),
    Turn("barge_in", SENTENCES[2]),
    Turn("speech", SENTENCES[3]),
)


def words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z0-9']+", text.lower())


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def noise(seconds: float, seed: int = 7, dbfs: float = NOISE_DBFS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rms = 32767 * 10 ** (dbfs / 20)
    return np.clip(rng.normal(0.0, rms, int(seconds * RATE)), -32768, 32767).astype(np.int16)


def trim(samples: np.ndarray, threshold: int = 300) -> np.ndarray:
    """Drop leading and trailing near-silence, so a clip's end is the end of speech."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples[:0]


class SpeechCache:
    """espeak-ng sentences as 48 kHz samples, made once per (voice, text) and kept in `folder`."""

    def __init__(self, folder: Path, voice: str = VOICE) -> None:
        self.folder = folder
        self.voice = voice
        self._memory: dict[str, np.ndarray] = {}

    def path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{self.voice}\n{text}".encode()).hexdigest()[:16]
        return self.folder / f"espeak-{self.voice}-{digest}.wav"

    async def get(self, text: str) -> np.ndarray:
        if text in self._memory:
            return self._memory[text]
        path = self.path(text)
        if path.is_file():
            samples, rate = await asyncio.to_thread(read_wav, path)
        else:
            samples, rate = await self._synthesize(text), RATE
            await asyncio.to_thread(self._store, path, samples)
        if rate != RATE:
            samples = resample(samples, rate, RATE)
        self._memory[text] = samples
        return samples

    async def prepare(self, script: tuple[Turn, ...]) -> None:
        for turn in script:
            if turn.text:
                await self.get(turn.text)
        await self.get(BARGE_SENTENCE)

    async def _synthesize(self, text: str) -> np.ndarray:
        from agent_runtime.providers.espeak import SAMPLE_RATE, EspeakTTS

        chunks = [chunk async for chunk in EspeakTTS(self.voice).synthesize(text)]
        return trim(resample(np.concatenate(chunks), SAMPLE_RATE, RATE))

    def _store(self, path: Path, samples: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        write_wav(partial, samples, RATE)
        partial.replace(path)  # atomic: concurrent runs never read half a file
