"""Per-call stereo recording: channel placement on a common timeline, background flushes, errors."""
from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.frames import AudioFrame, samples_per_frame
from media.recording import CallRecorder
from media.resample import StreamResampler
from media.wav import read_wav_channels

RATE = 16000


class FakeClock:
    """Test double for the recorder's clock: the test says when each frame arrives."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def frames_of(samples: np.ndarray, rate: int) -> list[AudioFrame]:
    n = samples_per_frame(rate)
    return [AudioFrame(samples[i:i + n], rate) for i in range(0, len(samples), n)]


def amplitude_at(channel: np.ndarray, freq: float, start: float, end: float) -> float:
    seg = channel[round(start * RATE):round(end * RATE)].astype(np.float64)
    t = np.arange(len(seg)) / RATE
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    return float(np.hypot(*coef))


def peak(channel: np.ndarray, start: float, end: float) -> int:
    return int(np.abs(channel[round(start * RATE):round(end * RATE)].astype(np.int32)).max())


def onset(channel: np.ndarray, after: float = 0.0) -> float:
    loud = np.flatnonzero(np.abs(channel[round(after * RATE):].astype(np.int32)) > 3000)
    return after + loud[0] / RATE


async def test_channels_hold_the_right_signal_at_the_right_time(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "calls" / "call-1.wav"
    rec = CallRecorder(path, RATE, flush_interval=3600, clock=clock)  # flushes driven by the test
    amp = 0.3 * 32767

    # Caller speaks 0–1 s, from a WebRTC leg (48 kHz frames, every 20 ms).
    for k, frame in enumerate(frames_of(tone(440, 48000, 1.0), 48000)):
        clock.t = (k + 1) * 0.02
        rec.add_caller(frame)

    # Nothing for a while; a flush makes what exists so far readable before close.
    clock.t = 1.6
    await rec.flush()
    early, rate = read_wav_channels(path)
    assert rate == RATE and early.shape[1] == 2
    assert 1.3 * RATE <= len(early) <= 1.6 * RATE
    assert amplitude_at(early[:, 0], 440, 0.1, 0.9) == pytest.approx(amp, rel=0.02)
    assert peak(early[:, 1], 0.0, len(early) / RATE) == 0

    # The agent answers 2–3 s from a SIP leg (8 kHz); the caller talks over it 2.5–3.5 s at 16 kHz.
    agent = frames_of(tone(1000, 8000, 1.0), 8000)
    caller = frames_of(tone(300, 16000, 1.0), 16000)
    for k in range(75):
        clock.t = 2.0 + (k + 1) * 0.02
        if k < 50:
            rec.add_agent(agent[k])
        if k >= 25:
            rec.add_caller(caller[k - 25])
    clock.t = 4.0
    await rec.close()

    both, rate = read_wav_channels(path)
    left, right = both[:, 0], both[:, 1]
    assert len(both) == 4 * RATE  # the recording spans the call, up to close()
    # Left: the caller's two turns and silence between them.
    assert amplitude_at(left, 440, 0.1, 0.9) == pytest.approx(amp, rel=0.02)
    assert peak(left, 1.05, 2.45) == 0
    assert amplitude_at(left, 300, 2.6, 3.4) == pytest.approx(amp, rel=0.02)
    assert amplitude_at(left, 1000, 2.6, 3.4) < 0.01 * amp  # the agent did not leak into the caller's side
    # Right: the agent's turn only.
    assert peak(right, 0.0, 1.95) == 0
    assert amplitude_at(right, 1000, 2.1, 2.9) == pytest.approx(amp, rel=0.02)
    assert peak(right, 3.05, 4.0) == 0
    assert peak(left, 3.55, 4.0) == 0
    # Onsets where the frames arrived (20 ms frames: within one frame plus filter delay).
    assert onset(left) == pytest.approx(0.0, abs=0.025)
    assert onset(right) == pytest.approx(2.0, abs=0.025)
    assert onset(left, after=1.5) == pytest.approx(2.5, abs=0.025)


@pytest.mark.parametrize("in_rate", [16000, 8000, 48000])
async def test_jittery_arrival_is_not_chopped(tmp_path: Path, in_rate: int) -> None:
    """Frames arriving in bunches (two every 40 ms) stay back to back: no silence is inserted,
    also when soxr holds back 100+ ms of an 8 kHz stream while flushes happen."""
    clock = FakeClock()
    rec = CallRecorder(tmp_path / "r.wav", RATE, flush_interval=3600, clock=clock)
    for k, frame in enumerate(frames_of(tone(500, in_rate, 2.0), in_rate)):
        clock.t = 0.04 * (k // 2 + 1)
        rec.add_caller(frame)
        if k % 10 == 9:
            await rec.flush()
    clock.t = 2.2
    await rec.close()
    left = read_wav_channels(tmp_path / "r.wav")[0][:, 0]
    if in_rate == RATE:
        assert np.array_equal(left[: 2 * RATE], tone(500, RATE, 2.0))
    for start in np.arange(0.05, 1.9, 0.1):  # the tone's level holds in every 100 ms window
        assert amplitude_at(left, 500, start, start + 0.1) == pytest.approx(0.3 * 32767, rel=0.02)


async def test_background_flush_leaves_a_playable_file_before_close(tmp_path: Path) -> None:
    path = tmp_path / "live.wav"
    rec = CallRecorder(path, RATE, flush_interval=0.05)
    speech = tone(700, RATE, 0.5)
    for frame in frames_of(speech, RATE):
        rec.add_caller(frame)
    # Wait (generously) for the background task to write the caller's half second.
    for _ in range(400):
        await asyncio.sleep(0.05)
        if path.exists() and path.stat().st_size >= 44 + 4 * len(speech):
            break
    # A reader that knows nothing of the recorder (as after a crash) sees a consistent file.
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        assert w.getnframes() == (path.stat().st_size - 44) // 4 >= len(speech)
    both, _ = read_wav_channels(path)
    assert np.array_equal(both[: len(speech), 0], speech)
    assert not both[:, 1].any()
    await rec.close()
    await rec.close()  # idempotent
    rec.add_agent(AudioFrame.silence(RATE))  # ignored after close, no error
    assert rec.duration >= 0.5


async def test_write_error_stops_recording_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = CallRecorder(blocker / "call.wav", RATE, flush_interval=0.01)
    rec.add_caller(AudioFrame.silence(RATE))
    await rec.close()
    assert isinstance(rec.error, OSError)
    rec.add_caller(AudioFrame.silence(RATE))


async def test_empty_recording_is_a_valid_wav(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path / "empty.wav", 8000, flush_interval=3600, clock=FakeClock())
    await rec.close()
    both, rate = read_wav_channels(tmp_path / "empty.wav")
    assert rate == 8000 and both.shape == (0, 2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["caller", "agent", "caller-idle", "agent-idle", "flush"]),
                                st.integers(0, 200)),
                      min_size=1, max_size=60))
async def test_any_arrival_pattern_keeps_every_sample_once_and_in_order(tmp_path: Path, steps: list) -> None:
    """Whatever the order, timing and flushes: each channel holds exactly its frames, in order, with
    only silence added, and the file spans the call up to close()."""
    clock = FakeClock()
    path = tmp_path / f"prop-{id(steps)}.wav"
    rec = CallRecorder(path, RATE, flush_interval=3600, clock=clock)
    sent: dict[str, list[np.ndarray]] = {"caller": [], "agent": []}
    counter = 1
    for what, advance_ms in steps:
        clock.t += advance_ms / 1000
        if what == "flush":
            await rec.flush()
            continue
        who, _, idle = what.partition("-")
        if idle:  # an idle tick: digital silence, which only ever adds zeros
            samples = np.zeros(320, dtype=np.int16)
        else:
            samples = (np.arange(counter, counter + 320) % 30000 + 1).astype(np.int16)  # never 0
            counter += 320
            sent[who].append(samples)
        (rec.add_caller if who == "caller" else rec.add_agent)(AudioFrame(samples, RATE))
    await rec.close()
    both, _ = read_wav_channels(path)
    assert len(both) >= round(clock.t * RATE)
    for column, who in ((0, "caller"), (1, "agent")):
        channel = both[:, column]
        expected = np.concatenate(sent[who]) if sent[who] else np.zeros(0, np.int16)
        assert np.array_equal(channel[channel != 0], expected)


async def test_digital_silence_keeps_its_place_without_resampling(tmp_path: Path) -> None:
    """Idle ticks (all-zero frames) skip soxr, yet the audio after them lands where a continuous
    resampler would put it."""
    clock = FakeClock()
    rec = CallRecorder(tmp_path / "z.wav", RATE, flush_interval=3600, clock=clock)
    sound = tone(440, 48000, 0.3)
    stream = np.concatenate([sound, np.zeros(960 * 3, np.int16), sound])  # 60 ms of idle ticks between
    for k, frame in enumerate(frames_of(stream, 48000)):
        clock.t = (k + 1) * 0.02
        rec.add_agent(frame)
    clock.t = 0.7
    await rec.close()
    right = read_wav_channels(tmp_path / "z.wav")[0][:, 1]
    continuous = StreamResampler(48000, RATE)
    reference = np.concatenate([continuous.push(stream), continuous.flush()])
    assert len(right) == round(0.7 * RATE)
    diff = np.abs(right[: len(reference)].astype(np.int32) - reference)
    # Ending and restarting the stream at the silence's edges (0.30 s and 0.36 s) changes the filter's
    # ringing there a little; everywhere else, the second tone included, it is the same audio.
    edges = np.array([round(0.30 * RATE), round(0.36 * RATE)])
    differing = np.flatnonzero(diff > 4)
    assert (np.abs(differing[:, None] - edges).min(axis=1) <= 16).all()  # within 1 ms of an edge
    assert diff.max() < 0.01 * 32767
    assert not right[len(reference):].any()
