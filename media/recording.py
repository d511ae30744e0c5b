"""Per-call stereo recording: left channel the caller, right channel the agent, on one timeline.

Both directions arrive as 20 ms frames as the call happens (the caller's decoded inbound frames, the
agent's frames as the leg sends them). Each frame is placed at the time it arrives on the recorder's
clock: audio that keeps coming is appended back to back (so network jitter does not chop it up), and
when a direction falls behind the clock by more than `gap_tolerance` (the caller went on hold, the
agent had nothing to say and the leg sent nothing) the gap is filled with silence before the next
frame, which keeps the two channels aligned.

The file is written in the background: every `flush_interval` seconds the part of the timeline that
both channels have covered is interleaved and appended in a worker thread, and the header's sizes are
rewritten, so a crash leaves a playable WAV holding everything up to the last flush. Nothing here
blocks the event loop: per frame it is a list append and, for other rates, a ~5 µs soxr call
(skipped for digital silence, such as the idle ticks of the agent's side).
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from media.dsp import interleave
from media.frames import AudioFrame
from media.resample import StreamResampler
from media.wav import DATA_SIZE_OFFSET, HEADER_BYTES, RIFF_SIZE_OFFSET, pcm16_header

log = logging.getLogger(__name__)

CHANNELS = 2


class _Track:
    """One direction of the call: samples at the recorder's rate not yet written, and their position.

    Positions are in samples on the recorder's timeline. soxr holds back up to ~150 ms of a stream
    (see media/resample.py), so the gap test uses `in_end`, where the input pushed so far ends,
    rather than `end`, where the output produced so far ends.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.chunks: list[np.ndarray] = []
        self.start = 0  # timeline position of chunks[0]
        self.pending = 0  # samples held in chunks
        self.resampler: StreamResampler | None = None
        self.origin = 0  # timeline position where the current resampler stream began
        self.pushed = 0  # input samples pushed into the current stream

    @property
    def end(self) -> int:
        return self.start + self.pending

    @property
    def in_end(self) -> int:
        if self.resampler is None:
            return self.end
        return self.origin + self.pushed * self.rate // self.resampler.in_rate

    def append(self, samples: np.ndarray) -> None:
        if len(samples):
            self.chunks.append(samples)
            self.pending += len(samples)

    def push(self, samples: np.ndarray, rate: int) -> None:
        if not samples.any():
            # Digital silence (a leg's idle ticks, most of the agent's side): its resampled form is
            # known, so end the stream and skip soxr. The next sound starts a fresh stream, whose
            # zero history is exactly this silence.
            self.end_stream()
            self.append(np.zeros(len(samples) * self.rate // rate, dtype=np.int16))
            self.origin = self.end
            return
        if self.resampler is None or self.resampler.in_rate != rate:
            self.end_stream()
            self.resampler = StreamResampler(rate, self.rate)
            self.origin = self.end
        self.append(self.resampler.push(samples))
        self.pushed += len(samples)

    def end_stream(self) -> None:
        """Drain the resampler's held-back tail: it belongs before whatever comes next."""
        if self.resampler is not None:
            self.append(self.resampler.flush())
            self.resampler = None  # the next frame starts a fresh stream, at whatever rate it has
        self.origin, self.pushed = self.end, 0

    def gap_to(self, position: int) -> None:
        """Nothing arrived up to `position`: end the stream there and fill with silence."""
        self.end_stream()
        if position > self.end:
            self.append(np.zeros(position - self.end, dtype=np.int16))
        self.origin = self.end

    def take(self, count: int) -> np.ndarray:
        """Remove and return the first `count` pending samples (count ≤ pending)."""
        data = np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        head, rest = data[:count], data[count:]
        self.chunks = [rest] if len(rest) else []
        self.start += count
        self.pending -= count
        return head


class CallRecorder:
    """Record a call to a stereo PCM16 WAV at `sample_rate` (left: caller, right: agent).

    Construct it on the running event loop; call `add_caller`/`add_agent` per frame and
    `await close()` once at the end (it writes what is left and fixes the header one last time).
    A write error (disk full) is logged and stops the recording; it never disturbs the call.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int = 16000,
        *,
        flush_interval: float = 1.0,
        gap_tolerance: float = 0.06,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.flush_interval = flush_interval
        self.gap_tolerance = round(gap_tolerance * sample_rate)
        self._clock = clock
        self._t0 = clock()
        self._caller = _Track(sample_rate)
        self._agent = _Track(sample_rate)
        self._file: BinaryIO | None = None
        self.written_frames = 0  # stereo sample frames in the file
        self.error: BaseException | None = None
        self.closed = False
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"recorder:{self.path.name}")

    # ---- feeding -----------------------------------------------------------------------------

    def add_caller(self, frame: AudioFrame) -> None:
        self._add(self._caller, frame)

    def add_agent(self, frame: AudioFrame) -> None:
        self._add(self._agent, frame)

    def _now(self) -> int:
        return round((self._clock() - self._t0) * self.sample_rate)

    def _add(self, track: _Track, frame: AudioFrame) -> None:
        if self.closed or self.error is not None:
            return
        length = len(frame.samples) * self.sample_rate // frame.sample_rate
        arrived = self._now() - length  # where this frame's first sample belongs
        if arrived - track.in_end > self.gap_tolerance:
            track.gap_to(arrived)
        track.push(frame.samples, frame.sample_rate)

    @property
    def duration(self) -> float:
        """Seconds of audio in the file so far."""
        return self.written_frames / self.sample_rate

    # ---- writing -----------------------------------------------------------------------------

    def _collect(self, final: bool) -> np.ndarray | None:
        """Interleave the part of the timeline both channels cover (everything, when final)."""
        tracks = (self._caller, self._agent)
        if final:
            for track in tracks:
                track.end_stream()
            horizon = max(self._now(), *(t.end for t in tracks))  # the call lasted until now
            for track in tracks:
                track.gap_to(horizon)
        else:
            # A direction silent for longer than twice the tolerance is in a gap: it is silence up to
            # here, and its next frame still lands exactly where it arrives (see _add's gap test).
            quiet_until = self._now() - 2 * self.gap_tolerance
            for track in tracks:
                if track.in_end < quiet_until:
                    track.gap_to(quiet_until)
            horizon = min(t.end for t in tracks)
        count = horizon - self.written_frames
        if count <= 0:
            return None
        return interleave(self._caller.take(count), self._agent.take(count))

    def _write(self, stereo: np.ndarray | None, final: bool) -> None:
        """Worker thread: append samples, then rewrite the header's sizes."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")
            self._file.write(pcm16_header(self.sample_rate, CHANNELS, 0))
        f = self._file
        if stereo is not None:
            f.seek(0, os.SEEK_END)
            f.write(stereo.astype("<i2", copy=False).tobytes())
        data_bytes = f.tell() - HEADER_BYTES
        f.seek(RIFF_SIZE_OFFSET)
        f.write(struct.pack("<I", 36 + data_bytes))
        f.seek(DATA_SIZE_OFFSET)
        f.write(struct.pack("<I", data_bytes))
        f.flush()
        if final:
            os.fsync(f.fileno())
            f.close()
            self._file = None

    async def _flush(self, final: bool) -> None:
        async with self._lock:  # one write at a time, in timeline order
            stereo = self._collect(final)
            if stereo is not None:
                self.written_frames += len(stereo) // CHANNELS
            await asyncio.to_thread(self._write, stereo, final)

    async def flush(self) -> None:
        """Write what both channels have covered now (the background task does this every interval)."""
        if not self.closed and self.error is None:
            await self._guarded_flush(final=False)

    async def _guarded_flush(self, final: bool) -> None:
        try:
            await self._flush(final)
        except OSError as exc:
            self.error = exc
            log.error("recording %s stopped: %s", self.path, exc)

    async def _run(self) -> None:
        while self.error is None and not self._stop.is_set():
            await self._guarded_flush(final=False)
            try:
                await asyncio.wait_for(self._stop.wait(), self.flush_interval)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop, write everything left and finalise the header. Idempotent.

        The background task is stopped, not cancelled, so a write already in its thread completes first.
        """
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        await self._task
        if self.error is None:
            await self._guarded_flush(final=True)
        if self._file is not None:
            await asyncio.to_thread(self._file.close)
            self._file = None
