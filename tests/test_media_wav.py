"""WAV reading (PCM 8/16/24/32, float, extensible, unfinished headers) and PCM16 writing."""
from __future__ import annotations

import struct
import subprocess
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from media.wav import WavError, pcm16_header, read_wav, read_wav_channels, write_wav


def ramp(n: int) -> np.ndarray:
    return np.linspace(-32768, 32767, n).astype(np.int16)


def test_mono_round_trip_and_stdlib_agrees(tmp_path: Path) -> None:
    x = ramp(1000)
    path = tmp_path / "mono.wav"
    write_wav(path, x, 16000)
    y, rate = read_wav(path)
    assert rate == 16000 and y.dtype == np.int16 and np.array_equal(x, y)
    with wave.open(str(path)) as w:  # a file any player reads
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 1000)


def test_stereo_round_trip_and_downmix(tmp_path: Path) -> None:
    left, right = ramp(500), np.full(500, 1000, dtype=np.int16)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), 8000)
    both, rate = read_wav_channels(path)
    assert rate == 8000 and both.shape == (500, 2)
    assert np.array_equal(both[:, 0], left) and np.array_equal(both[:, 1], right)
    mono, _ = read_wav(path)
    expected = (left.astype(np.int32) + right) // 2
    assert np.array_equal(mono, expected.astype(np.int16))


def write_raw(path: Path, fmt_chunk: bytes, data: bytes, data_size: int | None = None, extra: bytes = b"") -> None:
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + extra + b"data" + struct.pack("<I", size) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def fmt(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def test_other_widths_and_float(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    write_raw(p, fmt(1, 1, 8000, 8), bytes([0, 128, 255]))
    assert read_wav(p)[0].tolist() == [-32768, 0, 32512]
    write_raw(p, fmt(1, 1, 8000, 24), bytes([0xFF, 0x34, 0x12, 0x00, 0x00, 0x80]))
    assert read_wav(p)[0].tolist() == [0x1234, -32768]
    write_raw(p, fmt(1, 1, 8000, 32), struct.pack("<ii", 0x12345678, -(2**31)))
    assert read_wav(p)[0].tolist() == [0x1234, -32768]
    write_raw(p, fmt(3, 1, 8000, 32), struct.pack("<fff", 0.5, -1.0, 3.0))
    assert read_wav(p)[0].tolist() == [16384, -32768, 32767]


def test_extensible_header_odd_chunks_and_unfinished_size(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    # WAVE_FORMAT_EXTENSIBLE whose subformat is PCM, preceded by an odd-sized LIST chunk (padded).
    ext = fmt(0xFFFE, 1, 16000, 16) + struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 1) + bytes(14)
    samples = struct.pack("<hhh", 1, -2, 3)
    write_raw(p, ext, samples, extra=b"LIST" + struct.pack("<I", 3) + b"abc\0")
    y, rate = read_wav(p)
    assert rate == 16000 and y.tolist() == [1, -2, 3]
    # A writer that died before fixing the data size (0) still gives everything that is there.
    write_raw(p, fmt(1, 1, 16000, 16), samples, data_size=0)
    assert read_wav(p)[0].tolist() == [1, -2, 3]


def test_bad_files_raise_wav_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.wav"
    p.write_bytes(b"not a wav at all")
    with pytest.raises(WavError):
        read_wav(p)
    write_raw(p, fmt(6, 1, 8000, 8), b"\x00")  # A-law: not supported here
    with pytest.raises(WavError):
        read_wav(p)
    p.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVE")
    with pytest.raises(WavError):
        read_wav(p)


def test_write_rejects_non_int16(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_wav(tmp_path / "x.wav", np.zeros(4, dtype=np.float32), 16000)


def test_header_layout() -> None:
    h = pcm16_header(16000, 2, 64000)
    assert len(h) == 44 and h[:4] == b"RIFF" and struct.unpack_from("<I", h, 40)[0] == 64000


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_reads_what_sox_writes(tmp_path: Path) -> None:
    """sox writes 32-bit float stereo as WAVE_FORMAT_EXTENSIBLE: the stdlib `wave` module refuses it."""
    p = tmp_path / "sox.wav"
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "2", "-e", "floating-point", "-b", "32", str(p),
                    "synth", "0.1", "sine", "440", "vol", "0.5"], check=True)
    both, rate = read_wav_channels(p)
    assert rate == 22050 and both.shape == (2205, 2)
    assert 0.45 * 32768 < np.abs(both).max() <= 0.5 * 32768 + 1
