"""Streaming and one-shot resampling (soxr) plus exact 20 ms re-framing.

soxr's streaming output is bursty: 20 ms inputs at 48 kHz give 0, 490, 0, 489, 489, 0, … samples at
16 kHz, never exactly in × out_rate / in_rate per call. Transports need exact 20 ms frames, so
`Reframer` turns any chunking into exact frames and `FrameResampler` does both in one step.

Supported rates are any soxr accepts; Talkwire uses 48000 (Opus), 22050 (Piper), 16000 (Whisper,
VAD, recordings) and 8000 (G.711). Equal rates are an identity: input arrays come back as they are.

Latency. soxr's fixed-rate engine works in DFT blocks, so in a stream fed 20 ms at a time its output
lags the input by up to (measured, HQ): 48k→16k 37 ms, 16k→48k 37 ms, 22.05k→48k 42 ms,
22.05k→8k 80 ms, 16k↔8k 115 ms, 48k→8k 157 ms. That is fine for recordings and whole TTS chunks,
not for barge-in detection. `low_latency=True` selects soxr's variable-rate engine instead: at most
30 ms (48k→16k 13 ms, 16k→8k 15 ms, 8k→16k 30 ms), for 2-9x the CPU per frame (scripts/bench_dsp.py). Where it can,
latency-critical code should avoid resampling altogether (webrtcvad takes 8/16/32/48 kHz) or resample
whole buffers with `resample()` (an utterance for STT, a sentence from TTS).
"""
from __future__ import annotations

import numpy as np
import soxr

from media.frames import FRAME_MS, AudioFrame

QUALITY = "HQ"  # soxr's default: 20-bit precision
_DTYPES = (np.dtype(np.int16), np.dtype(np.float32))


def _check_dtype(samples: np.ndarray) -> None:
    if samples.dtype not in _DTYPES:
        raise TypeError(f"resampling takes int16 or float32 samples, got {samples.dtype}")


def resample(samples: np.ndarray, in_rate: int, out_rate: int, quality: str = QUALITY) -> np.ndarray:
    """Resample a whole mono buffer (e.g. one TTS sentence) at once; same dtype out as in."""
    _check_dtype(samples)
    if in_rate == out_rate or not len(samples):
        return samples if in_rate == out_rate else samples[:0]
    return soxr.resample(np.ascontiguousarray(samples), in_rate, out_rate, quality=quality)


class StreamResampler:
    """Resample a mono stream chunk by chunk, keeping filter state between chunks.

    Output per call is bursty (see the module docstring); the total over a stream, including
    `flush()`, is in_samples × out_rate / in_rate within a sample or two.
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        dtype: type | np.dtype = np.int16,
        quality: str = QUALITY,
        *,
        low_latency: bool = False,
    ) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPES:
            raise TypeError(f"resampling takes int16 or float32 samples, got {self.dtype}")
        self.quality = quality
        self.low_latency = low_latency
        self._stream = None if in_rate == out_rate else self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype=self.dtype.name, quality=self.quality, vr=self.low_latency
        )

    def push(self, samples: np.ndarray) -> np.ndarray:
        if samples.dtype != self.dtype:
            raise TypeError(f"this resampler takes {self.dtype}, got {samples.dtype}")
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(np.ascontiguousarray(samples))

    def flush(self) -> np.ndarray:
        """Drain the filter's tail at the end of a stream; the resampler can then start a new stream."""
        if self._stream is None:
            return np.zeros(0, dtype=self.dtype)
        tail = self._stream.resample_chunk(np.zeros(0, dtype=self.dtype), last=True)
        self._stream = self._new_stream()
        return tail


class Reframer:
    """Cut a stream of arbitrarily sized chunks into frames of exactly `frame_samples`."""

    def __init__(self, frame_samples: int, dtype: type | np.dtype = np.int16) -> None:
        if frame_samples < 1:
            raise ValueError("frame_samples must be ≥ 1")
        self.frame_samples = frame_samples
        self.dtype = np.dtype(dtype)
        self._pending = np.zeros(0, dtype=self.dtype)

    @property
    def pending_samples(self) -> int:
        return len(self._pending)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Every complete frame now available, oldest first; the remainder waits for the next push.

        Frames may be views of `samples` (no copy when it splits evenly): do not reuse its buffer.
        """
        if samples.dtype != self.dtype:
            raise TypeError(f"this reframer takes {self.dtype}, got {samples.dtype}")
        if not len(self._pending) and len(samples) == self.frame_samples:
            return [samples]  # already one exact frame: the common case for 20 ms input
        data = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        n = len(data) // self.frame_samples
        cut = n * self.frame_samples
        # Copy the remainder so it does not keep the caller's (possibly large) buffer alive.
        self._pending = data[cut:].copy()
        if not n:
            return []
        return list(data[:cut].reshape(n, self.frame_samples))

    def flush(self, pad: bool = True) -> list[np.ndarray]:
        """The last partial frame at the end of a stream: zero-padded to a full frame, or as it is."""
        if not len(self._pending):
            return []
        tail, self._pending = self._pending, np.zeros(0, dtype=self.dtype)
        if pad:
            tail = np.concatenate((tail, np.zeros(self.frame_samples - len(tail), dtype=self.dtype)))
        return [tail]


class FrameResampler:
    """Push audio at one rate, get exact 20 ms AudioFrames at another.

    Output timestamps continue from the first pushed frame's timestamp, advanced by the output
    samples already emitted, so they stay evenly spaced whatever soxr's burst pattern.
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        frame_ms: int = FRAME_MS,
        quality: str = QUALITY,
        *,
        low_latency: bool = False,
    ) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = StreamResampler(in_rate, out_rate, np.int16, quality, low_latency=low_latency)
        self._reframer = Reframer(out_rate * frame_ms // 1000)
        self._t0: float | None = None
        self._emitted = 0

    def push(self, audio: AudioFrame | np.ndarray) -> list[AudioFrame]:
        if isinstance(audio, AudioFrame):
            if audio.sample_rate != self.in_rate:
                raise ValueError(f"frame at {audio.sample_rate} Hz pushed into a {self.in_rate} Hz resampler")
            if self._t0 is None:
                self._t0 = audio.timestamp
            samples = audio.samples
        else:
            samples = audio
        return self._frames(self._reframer.push(self._resampler.push(samples)))

    def flush(self) -> list[AudioFrame]:
        """End of stream: the resampler's tail and the last frame, zero-padded."""
        frames = self._reframer.push(self._resampler.flush()) + self._reframer.flush(pad=True)
        out = self._frames(frames)
        self._t0, self._emitted = None, 0
        return out

    def _frames(self, arrays: list[np.ndarray]) -> list[AudioFrame]:
        t0 = self._t0 or 0.0
        out = []
        for samples in arrays:
            out.append(AudioFrame(samples, self.out_rate, t0 + self._emitted / self.out_rate))
            self._emitted += len(samples)
        return out
