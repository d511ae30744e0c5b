"""TTS provider `ESPEAK`: the espeak-ng program as a light, instant fallback voice.

Each utterance runs one `espeak-ng --stdout` subprocess (text on stdin, so no text is ever read as a
command-line option); its WAV output is streamed back as it is produced. Voices are espeak-ng voice ids
(`en-us`, `en-gb`, `fr`, ...), optionally with a variant (`en-us+f3`). Its voice id for a language is the
language's code for the Indian languages (`hi`, `bn`, `gu`, `kn`, `ml`, `mr`, `pa`, `ta`, `te`, `ur`): a call
that switches to one of them speaks it offline (conversation/language.py).
"""
from __future__ import annotations

import asyncio
import logging
import re
import shutil
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from .base import ProviderError

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # espeak-ng's own voices all speak at 22050 Hz
DEFAULT_WPM = 175
CHUNK_BYTES = 2 * SAMPLE_RATE // 5  # yield about 200 ms at a time
_VOICE_ID = re.compile(r"^[A-Za-z0-9_-]+(\+[A-Za-z0-9_-]+)?$")


@dataclass(frozen=True, slots=True)
class EspeakVoice:
    id: str  # what -v takes, e.g. "en-us"
    name: str  # espeak-ng's description, e.g. "English_(America)"
    gender: str | None  # "MALE" | "FEMALE"


def available() -> bool:
    return shutil.which("espeak-ng") is not None


async def list_voices(language: str | None = None) -> list[EspeakVoice]:
    """espeak-ng's own voices (not the mbrola ones, which need extra packages), optionally for a language."""
    args = ["espeak-ng", f"--voices={language}" if language else "--voices"]
    try:
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except (TimeoutError, OSError) as exc:
        raise ProviderError(f"cannot list espeak-ng voices: {exc!r}") from exc
    voices: dict[str, EspeakVoice] = {}
    for line in out.decode(errors="replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or cols[4].startswith("mb/") or cols[1] == "variant":
            continue
        gender = {"M": "MALE", "F": "FEMALE"}.get(cols[2].rsplit("/", 1)[-1])
        voices.setdefault(cols[1], EspeakVoice(cols[1], cols[3], gender))
    return list(voices.values())


def _data_offset(header: bytes) -> int | None:
    """Offset of the PCM after a RIFF/WAVE header, or None until the `data` chunk header has arrived."""
    if len(header) < 12:
        return None
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ProviderError("espeak-ng did not write a WAV stream")
    pos = 12
    while pos + 8 <= len(header):
        chunk_id, size = header[pos:pos + 4], struct.unpack("<I", header[pos + 4:pos + 8])[0]
        if chunk_id == b"data":
            return pos + 8
        if chunk_id == b"fmt ":
            if pos + 16 > len(header):
                return None
            channels, rate = struct.unpack("<HI", header[pos + 10:pos + 16])
            if channels != 1 or rate != SAMPLE_RATE:
                raise ProviderError(f"unexpected espeak-ng output: {channels} channels at {rate} Hz")
        pos += 8 + size
    return None


class EspeakTTS:
    """`TextToSpeech` with espeak-ng; `speed` scales the default 175 words per minute."""

    vendor = "ESPEAK"
    sample_rate = SAMPLE_RATE

    def __init__(self, voice: str = "en-us") -> None:
        if not _VOICE_ID.match(voice):
            raise ProviderError(f"invalid espeak-ng voice id {voice!r}")
        self.voice = voice

    async def warm(self) -> None:
        """Nothing to load: espeak-ng starts in milliseconds."""

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        if not text.strip():
            return
        wpm = int(min(max(DEFAULT_WPM * (speed or 1.0), 80), 450))
        try:
            proc = await asyncio.create_subprocess_exec(
                "espeak-ng", "--stdout", "--stdin", "-v", self.voice, "-s", str(wpm),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ProviderError(f"cannot run espeak-ng: {exc!r}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(text.encode())
            await proc.stdin.drain()
            proc.stdin.close()
            header = b""
            offset = None
            while offset is None:
                piece = await proc.stdout.read(4096)
                if not piece:
                    break
                header += piece
                offset = _data_offset(header)
            if offset is None:
                error = (await proc.stderr.read()).decode(errors="replace").strip()
                raise ProviderError(f"espeak-ng ({self.voice}) produced no audio: {error or 'no output'}")
            pending = header[offset:]
            while True:
                piece = await proc.stdout.read(CHUNK_BYTES)
                if piece:
                    pending += piece
                usable = len(pending) - len(pending) % 2
                if usable and (usable >= CHUNK_BYTES or not piece):
                    yield np.frombuffer(pending[:usable], dtype=np.int16).copy()
                    pending = pending[usable:]
                if not piece:
                    break
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
