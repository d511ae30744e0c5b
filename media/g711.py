"""G.711 mu-law and A-law by table lookup, bit-exact with CPython's `audioop` (the Sun reference code).

The tables are built once at import with vectorised numpy versions of the reference algorithms, so
encoding a frame (or every SIP leg's frame of a tick stacked into one 2-D array) is one `np.take`:
about 1 µs per 160-sample frame. `audioop` itself is gone in Python 3.13; the tests compare against it
on 3.11 for all 65536 inputs.
"""
from __future__ import annotations

import numpy as np

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _build_ulaw_encode() -> np.ndarray:
    # audioop: st_14linear2ulaw(sample >> 2)
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 32635) + (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")  # first segment end >= mag
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    out = (code ^ mask).astype(np.uint8)
    # Index by the int16 bit pattern viewed as uint16.
    return np.roll(out, -32768)


def _build_alaw_encode() -> np.ndarray:
    # audioop: st_linear2alaw(sample >> 3)
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    mag = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, (mag >> 1) & 0xF, (mag >> segc) & 0xF)
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant)
    out = (code ^ mask).astype(np.uint8)
    return np.roll(out, -32768)


def _build_ulaw_decode() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode()
ALAW_ENCODE = _build_alaw_encode()
ULAW_DECODE = _build_ulaw_decode()
ALAW_DECODE = _build_alaw_decode()
ULAW_SILENCE = int(ULAW_ENCODE[0])
ALAW_SILENCE = int(ALAW_ENCODE[0])

# RTP static payload types (RFC 3551) of the two codecs.
PCMU = 0
PCMA = 8


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 samples (any shape) → uint8 mu-law codes of the same shape."""
    return ULAW_ENCODE.take(samples.view(np.uint16))


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    return ALAW_ENCODE.take(samples.view(np.uint16))


def ulaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    """mu-law bytes → int16 samples."""
    if isinstance(codes, (bytes, bytearray, memoryview)):
        codes = np.frombuffer(codes, dtype=np.uint8)
    return ULAW_DECODE.take(codes)


def alaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    if isinstance(codes, (bytes, bytearray, memoryview)):
        codes = np.frombuffer(codes, dtype=np.uint8)
    return ALAW_DECODE.take(codes)


def encode(payload_type: int, samples: np.ndarray) -> np.ndarray:
    return ulaw_encode(samples) if payload_type == PCMU else alaw_encode(samples)


def decode(payload_type: int, codes: bytes | np.ndarray) -> np.ndarray:
    return ulaw_decode(codes) if payload_type == PCMU else alaw_decode(codes)
