"""DSP kernels: downmix, levels, gain and mixing with saturation, interleaving, float conversion."""
from __future__ import annotations

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from media import dsp

int16_arrays = arrays(np.int16, st.integers(min_value=0, max_value=400))


def test_downmix_av_packed_stereo() -> None:
    """PyAV's s16 (packed) stereo frame: shape (1, 2 × samples), L R L R …"""
    left = np.array([1000, -2000, 32767, -32768], dtype=np.int16)
    right = np.array([3000, 2000, 32767, -32768], dtype=np.int16)
    packed = dsp.interleave(left, right).reshape(1, -1)
    assert packed.shape == (1, 8)
    mono = dsp.to_mono_int16(packed, 2)
    assert mono.dtype == np.int16
    assert mono.tolist() == [2000, 0, 32767, -32768]  # averaged, never wrapped


def test_downmix_planar_and_float_and_mono() -> None:
    planar = np.array([[100, 200, 300], [300, 400, 500]], dtype=np.int16)  # s16p: one row per channel
    assert dsp.to_mono_int16(planar, 2).tolist() == [200, 300, 400]
    fltp = np.array([[0.5, -1.5], [0.5, -1.5]], dtype=np.float32)  # out of range clips
    assert dsp.to_mono_int16(fltp, 2).tolist() == [16384, -32768]
    mono = np.array([[1, 2, 3]], dtype=np.int16)
    assert dsp.to_mono_int16(mono, 1).tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        dsp.to_mono_int16(np.zeros(5, dtype=np.int16), 2)
    with pytest.raises(TypeError):
        dsp.to_mono_int16(np.zeros(4, dtype=np.int32), 2)


def test_gain_saturates_instead_of_wrapping() -> None:
    x = np.array([20000, -20000, 1000, 0], dtype=np.int16)
    assert dsp.apply_gain(x, 6.0).tolist() == [32767, -32768, 1995, 0]
    assert dsp.apply_gain(x, -6.0).tolist() == [10024, -10024, 501, 0]
    assert dsp.apply_gain(x, 0.0).tolist() == x.tolist()


def test_gain_per_row_of_a_batch() -> None:
    batch = np.full((3, 4), 1000, dtype=np.int16)
    out = dsp.apply_gain(batch, np.array([0.0, 20.0, -20.0]))
    assert out[:, 0].tolist() == [1000, 10000, 100]


def test_mix_saturates() -> None:
    a = np.array([30000, -30000, 100], dtype=np.int16)
    b = np.array([10000, -10000, -300], dtype=np.int16)
    assert dsp.mix(a, b).tolist() == [32767, -32768, -200]
    assert dsp.mix(a, b, b).tolist() == [32767, -32768, -500]
    with pytest.raises(ValueError):
        dsp.mix(a, b[:2])


@settings(max_examples=50, deadline=None)
@given(int16_arrays, int16_arrays)
def test_mix_matches_clipped_integer_sum(a: np.ndarray, b: np.ndarray) -> None:
    n = min(len(a), len(b))
    expected = np.clip(a[:n].astype(np.int64) + b[:n], -32768, 32767)
    assert np.array_equal(dsp.mix(a[:n], b[:n]), expected)


def test_levels() -> None:
    full_square = np.array([32767, -32768] * 80, dtype=np.int16)
    assert dsp.dbfs(full_square) == pytest.approx(0.0, abs=0.01)
    t = np.arange(16000) / 16000
    sine = np.round(0.1 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    assert dsp.rms(sine) == pytest.approx(0.1 * 32767 / np.sqrt(2), rel=1e-3)
    assert dsp.dbfs(sine) == pytest.approx(-23.0, abs=0.05)
    silence = np.zeros(320, dtype=np.int16)
    assert dsp.dbfs(silence) == dsp.DBFS_FLOOR
    assert dsp.rms(silence[:0]) == 0.0
    assert dsp.is_silent(silence) and not dsp.is_silent(sine)
    assert dsp.is_silent(sine, threshold_dbfs=-20.0)


def test_levels_batched_per_row() -> None:
    rows = np.stack([np.zeros(320, np.int16), np.full(320, 3277, np.int16), np.full(320, -32768, np.int16)])
    assert np.allclose(dsp.rms(rows), [0.0, 3277.0, 32768.0])
    assert np.allclose(dsp.dbfs(rows), [dsp.DBFS_FLOOR, -20.0, 0.0], atol=0.01)
    assert dsp.is_silent(rows).tolist() == [True, False, False]


def test_interleave() -> None:
    left = np.array([1, 2, 3], dtype=np.int16)
    right = np.array([-1, -2, -3], dtype=np.int16)
    assert dsp.interleave(left, right).tolist() == [1, -1, 2, -2, 3, -3]
    with pytest.raises(ValueError):
        dsp.interleave(left, right[:2])


@settings(max_examples=100, deadline=None)
@given(int16_arrays)
def test_int16_float_round_trip_is_exact(x: np.ndarray) -> None:
    f = dsp.int16_to_float(x)
    assert f.dtype == np.float32 and (np.abs(f) <= 1.0).all()
    assert np.array_equal(dsp.float_to_int16(f), x)


def test_float_to_int16_clips() -> None:
    out = dsp.float_to_int16(np.array([2.0, -2.0, 0.5, np.float32(-1.0)]))
    assert out.tolist() == [32767, -32768, 16384, -32768]


@pytest.mark.parametrize("fmt", ["s16", "s16p", "fltp"])
def test_downmix_real_pyav_frames(fmt: str) -> None:
    """What aiortc's Opus decoder hands over (s16 packed stereo) and the planar/float variants."""
    left = np.arange(-480, 480, dtype=np.int16) * 30
    right = np.full(960, 1000, dtype=np.int16)
    if fmt == "s16":
        data = dsp.interleave(left, right).reshape(1, -1)
    elif fmt == "s16p":
        data = np.stack([left, right])
    else:
        data = dsp.int16_to_float(np.stack([left, right]))
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
    mono = dsp.to_mono_int16(frame.to_ndarray(), len(frame.layout.channels))
    expected = (left.astype(np.int32) + right) // 2
    assert mono.dtype == np.int16 and np.array_equal(mono, expected)
