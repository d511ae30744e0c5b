"""Agent audio waiting to be sent on a leg, drained one 20 ms frame per clock tick.

The conversation pushes audio of any length; the leg's sender pops exactly one frame per tick.
`clear()` is barge-in: everything not yet sent is dropped at once. `played_total` counts the samples
handed to the transport, so the conversation can tell how much of what it said was actually heard.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from media.frames import samples_per_frame


class OutboundAudio:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = samples_per_frame(sample_rate)
        self._chunks: deque[np.ndarray] = deque()
        self._head = 0  # samples of _chunks[0] already popped
        self.queued_samples = 0
        self.pushed_total = 0
        self.played_total = 0
        # Called with every frame handed to the sender, None for a tick with nothing queued (recording).
        self.tap: Callable[[np.ndarray | None], None] | None = None

    def push(self, samples: np.ndarray) -> None:
        if samples.dtype != np.int16:
            raise TypeError("OutboundAudio takes int16 samples")
        if not len(samples):
            return
        self._chunks.append(samples)
        self.queued_samples += len(samples)
        self.pushed_total += len(samples)

    def pop_frame(self) -> np.ndarray | None:
        """One frame of queued audio (zero-padded at the end of a burst), or None when nothing is queued."""
        if not self.queued_samples:
            if self.tap is not None:
                self.tap(None)
            return None
        need = self.frame_samples
        parts: list[np.ndarray] = []
        while need and self._chunks:
            chunk = self._chunks[0]
            take = min(need, len(chunk) - self._head)
            parts.append(chunk[self._head:self._head + take])
            self._head += take
            need -= take
            if self._head == len(chunk):
                self._chunks.popleft()
                self._head = 0
        taken = self.frame_samples - need
        self.queued_samples -= taken
        self.played_total += taken
        if need:
            parts.append(np.zeros(need, dtype=np.int16))
        frame = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self.tap is not None:
            self.tap(frame)
        return frame

    def clear(self) -> int:
        """Drop everything queued; returns the number of samples dropped."""
        dropped = self.queued_samples
        self._chunks.clear()
        self._head = 0
        self.queued_samples = 0
        return dropped
