"""Streaming resampling, re-framing and the one-shot resampler."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.frames import AudioFrame, samples_per_frame
from media.resample import FrameResampler, Reframer, StreamResampler, resample

RATES = [48000, 22050, 16000, 8000]


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def tone_fit(samples: np.ndarray, freq: float, rate: int) -> tuple[float, float]:
    """(amplitude of `freq` in samples, residual RMS after removing it) by least squares."""
    t = np.arange(len(samples)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, samples.astype(np.float64), rcond=None)
    residual = samples - basis @ coef
    return float(np.hypot(coef[0], coef[1])), float(np.sqrt(np.mean(residual**2)))


def stream_through(resampler: StreamResampler, samples: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.push(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
    parts.append(resampler.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("low_latency", [False, True])
def test_sine_keeps_frequency_and_amplitude_48k_16k_48k(low_latency: bool) -> None:
    x = sine(440.0, 48000, 1.0)
    down = stream_through(StreamResampler(48000, 16000, low_latency=low_latency), x, 960)
    back = stream_through(StreamResampler(16000, 48000, low_latency=low_latency), down, 320)
    for y, rate in ((down, 16000), (back, 48000)):
        middle = y[rate // 5: -rate // 5]  # away from the filters' start-up and tail
        amplitude, residual = tone_fit(middle, 440.0, rate)
        assert amplitude == pytest.approx(0.5 * 32767, rel=0.01)
        assert residual < 0.001 * amplitude  # nothing but the tone (int16 rounding aside)
    # A different frequency does not fit: the check above can fail.
    wrong, _ = tone_fit(back[9600:-9600], 450.0, 48000)
    assert wrong < 0.05 * 0.5 * 32767


@pytest.mark.parametrize("low_latency", [False, True])
@pytest.mark.parametrize("in_rate", RATES)
@pytest.mark.parametrize("out_rate", RATES)
def test_stream_lengths_add_up(in_rate: int, out_rate: int, low_latency: bool) -> None:
    x = sine(300.0, in_rate, 0.5)
    resampler = StreamResampler(in_rate, out_rate, low_latency=low_latency)
    y = stream_through(resampler, x, samples_per_frame(in_rate))
    assert abs(len(y) - len(x) * out_rate / in_rate) <= 2
    assert y.dtype == np.int16


def test_identity_returns_input_without_copy() -> None:
    x = sine(300.0, 16000, 0.02)
    assert StreamResampler(16000, 16000).push(x) is x
    assert resample(x, 16000, 16000) is x
    assert len(StreamResampler(16000, 16000).flush()) == 0


def test_float32_streams_and_dtype_is_checked() -> None:
    x = (sine(300.0, 16000, 0.2) / 32768).astype(np.float32)
    y = stream_through(StreamResampler(16000, 8000, np.float32), x, 320)
    assert y.dtype == np.float32 and abs(len(y) - 1600) <= 2
    with pytest.raises(TypeError):
        StreamResampler(16000, 8000).push(x)
    with pytest.raises(TypeError):
        resample(x.astype(np.float64), 16000, 8000)


def test_soxr_is_bursty_but_low_latency_mode_stays_close() -> None:
    """Measured in samples, not time: how far the output trails the input after each 20 ms push."""
    x = sine(300.0, 8000, 2.0)
    for low_latency, bound_ms in ((False, None), (True, 35)):
        r = StreamResampler(8000, 16000, low_latency=low_latency)
        out, lags = 0, []
        for k, i in enumerate(range(0, len(x), 160)):
            out += len(r.push(x[i:i + 160]))
            lags.append((k + 1) * 20 - out / 16)  # ms of input not yet out
        worst = max(lags[10:])
        if bound_ms is None:
            assert worst > 60  # the fixed-rate engine's block latency the docstring warns about
        else:
            assert worst <= bound_ms


def test_one_shot_resample_keeps_tone() -> None:
    x = sine(1000.0, 22050, 0.5)
    y = resample(x, 22050, 8000)
    assert abs(len(y) - 4000) <= 1
    amplitude, residual = tone_fit(y[400:-400], 1000.0, 8000)
    assert amplitude == pytest.approx(0.5 * 32767, rel=0.01)
    assert residual < 0.001 * amplitude
    assert len(resample(x[:0], 22050, 8000)) == 0


@settings(max_examples=60, deadline=None)
@given(
    frame=st.sampled_from([160, 320, 441, 960]),
    chunks=st.lists(st.integers(min_value=0, max_value=2500), min_size=1, max_size=30),
)
def test_reframer_emits_exact_frames_for_any_chunking(frame: int, chunks: list[int]) -> None:
    total = sum(chunks)
    signal = (np.arange(total) % 30000).astype(np.int16)
    reframer = Reframer(frame)
    frames: list[np.ndarray] = []
    pos = 0
    for n in chunks:
        frames += reframer.push(signal[pos:pos + n])
        pos += n
        assert reframer.pending_samples < frame
    assert all(len(f) == frame for f in frames)
    assert len(frames) == total // frame
    joined = np.concatenate(frames) if frames else signal[:0]
    assert np.array_equal(joined, signal[: len(joined)])  # order and content kept
    tail = reframer.flush()
    if total % frame:
        assert len(tail) == 1 and len(tail[0]) == frame
        assert np.array_equal(tail[0][: total % frame], signal[len(joined):])
        assert not tail[0][total % frame:].any()
    else:
        assert tail == []
    assert reframer.flush() == []


@settings(max_examples=25, deadline=None)
@given(
    rates=st.sampled_from([(48000, 16000), (22050, 48000), (22050, 8000), (16000, 8000), (8000, 16000), (16000, 16000)]),
    chunks=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=12),
)
def test_frame_resampler_gives_exact_frames_with_even_timestamps(rates: tuple[int, int], chunks: list[int]) -> None:
    in_rate, out_rate = rates
    total = sum(chunks)
    x = sine(500.0, in_rate, total / in_rate + 1)[:total]
    fr = FrameResampler(in_rate, out_rate)
    out: list[AudioFrame] = []
    pos = 0
    for n in chunks:
        piece = x[pos:pos + n]
        out += fr.push(AudioFrame(piece, in_rate, 5.0) if pos == 0 else piece)
        pos += n
    out += fr.flush()
    size = samples_per_frame(out_rate)
    assert all(len(f.samples) == size and f.sample_rate == out_rate for f in out)
    expected = total * out_rate / in_rate
    assert len(out) * size - size - 2 <= expected <= len(out) * size + 2
    assert [round(f.timestamp, 6) for f in out] == [round(5.0 + k * 0.02, 6) for k in range(len(out))]


def test_frame_resampler_rejects_wrong_rate() -> None:
    with pytest.raises(ValueError):
        FrameResampler(48000, 16000).push(AudioFrame.silence(16000))
