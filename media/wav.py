"""WAV files: read any common PCM/float WAV into int16, write PCM16 mono or stereo.

The reader parses the RIFF chunks itself rather than using the stdlib `wave` module, because
`wave` refuses IEEE-float and WAVE_FORMAT_EXTENSIBLE files (what sox, Chromium tooling and many
editors write) and trusts the data chunk's size even when a writer died before fixing it.
These functions do blocking file I/O: call them from a thread (`asyncio.to_thread`) on the loop.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from media.dsp import float_to_int16, to_mono_int16

PCM = 1
IEEE_FLOAT = 3
EXTENSIBLE = 0xFFFE
HEADER_BYTES = 44  # the canonical PCM header `pcm16_header` writes
RIFF_SIZE_OFFSET = 4
DATA_SIZE_OFFSET = 40
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streaming writers leave when they cannot seek back


class WavError(ValueError):
    """Not a WAV file this module can read."""


def pcm16_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """The 44-byte header of a PCM16 WAV whose data chunk holds `data_bytes` bytes."""
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, PCM, channels, sample_rate, sample_rate * block_align, block_align, 16,
        b"data", data_bytes,
    )


def _decode(raw: bytes, fmt: int, bits: int, channels: int) -> np.ndarray:
    """Raw sample bytes → int16 array of shape (frames, channels)."""
    width = bits // 8
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if fmt == IEEE_FLOAT:
        if bits not in (32, 64):
            raise WavError(f"unsupported float width: {bits} bits")
        samples = float_to_int16(np.frombuffer(raw, dtype=f"<f{width}"))
    elif bits == 8:  # 8-bit WAV is unsigned, centred on 128
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif bits == 16:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        samples = ((b[:, 2].astype(np.int8).astype(np.int16) << 8) | b[:, 1]).astype(np.int16)
    elif bits == 32:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise WavError(f"unsupported PCM width: {bits} bits")
    return samples.reshape(-1, channels)


def read_wav_channels(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(int16 array of shape (frames, channels), sample rate)."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{path}: not a RIFF/WAVE file")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16:
                raise WavError(f"{path}: fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, body + 24)[0]  # first 2 bytes of the subformat GUID
            if tag not in (PCM, IEEE_FLOAT):
                raise WavError(f"{path}: unsupported WAV encoding (format tag {tag:#x})")
            if channels < 1:
                raise WavError(f"{path}: no channels")
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError(f"{path}: data chunk before fmt chunk")
            end = len(data) if size in _UNKNOWN_SIZES else min(len(data), body + size)
            tag, channels, rate, bits = fmt
            return _decode(data[body:end], tag, bits, channels), rate
        pos = body + size + (size & 1)  # chunks are word-aligned
    raise WavError(f"{path}: no {'data' if fmt else 'fmt'} chunk")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(mono int16 samples, sample rate); multi-channel files are averaged down to mono."""
    samples, rate = read_wav_channels(path)
    channels = samples.shape[1]
    return (samples[:, 0].copy() if channels == 1 else to_mono_int16(samples, channels)), rate


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write PCM16: a 1-D array is mono, a (frames, channels) array is multi-channel (e.g. stereo)."""
    a = np.asarray(samples)
    if a.dtype != np.int16:
        raise TypeError(f"write_wav takes int16 samples, got {a.dtype}")
    channels = 1 if a.ndim == 1 else a.shape[1]
    body = np.ascontiguousarray(a, dtype="<i2").tobytes()
    with open(path, "wb") as f:
        f.write(pcm16_header(sample_rate, channels, len(body)))
        f.write(body)
