"""A fixed-delay jitter buffer for 20 ms RTP audio frames, drained once per media-clock tick.

Packets go in by RTP sequence number (extended past the 16-bit wrap), in whatever order they arrive;
`pop()` hands out exactly one frame per tick in sequence order once `target` frames are buffered.
A missing frame is concealed: the last frame repeated at decaying gain for a few ticks, then
silence. When the sender's clock runs faster than ours the buffer is trimmed back to `target`, and
when it stops sending (silence suppression, hold, end of call) the buffer plays silence after the
concealment ran out, so the consumer (VAD, endpointing) keeps seeing time pass.
"""
from __future__ import annotations

import numpy as np

_CONCEAL_GAINS = (0.8, 0.5, 0.25)
MISSING = object()  # pop_item(): the due frame is lost or late


class JitterBuffer:
    def __init__(self, frame_samples: int, target: int = 3, maximum: int = 12) -> None:
        self.frame_samples = frame_samples
        self.target = target
        self.maximum = maximum
        self._frames: dict[int, object] = {}  # decoded frames, or encoded payloads (see pop_item)
        self._next: int | None = None  # extended sequence number to play next
        self._highest: int | None = None  # highest extended sequence number seen
        self._playing = False
        self._last: np.ndarray | None = None
        self._concealed_run = 0
        self._silence = np.zeros(frame_samples, dtype=np.int16)
        self.received = 0
        self.late = 0
        self.duplicates = 0
        self.concealed = 0
        self.trimmed = 0

    def reset(self) -> None:
        """Forget the stream (a new remote SSRC): the next packet starts a new sequence space."""
        self._frames.clear()
        self._next = None
        self._highest = None
        self._playing = False
        self._concealed_run = 0

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            return seq
        base = self._highest & ~0xFFFF
        candidate = base | seq
        # Pick the candidate closest to the highest seen (handles the 65535 → 0 wrap both ways).
        if candidate - self._highest > 0x8000:
            candidate -= 0x10000
        elif self._highest - candidate > 0x8000:
            candidate += 0x10000
        return candidate

    def put(self, seq: int, samples: object) -> None:
        ext = self._extend(seq)
        if self._next is not None and ext < self._next:
            self.late += 1
            return
        if ext in self._frames:
            self.duplicates += 1
            return
        if self._highest is not None and ext - self._highest > 1000:
            # A jump far ahead (a restarted sender that kept its SSRC): start over from here.
            self.reset()
            ext = seq
        self._frames[ext] = samples
        self.received += 1
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if self._next is None:
            self._next = ext
        elif ext < self._next:  # arrived before playout began and is earlier than the first one
            self._next = ext

    @property
    def depth(self) -> int:
        """Frames from the next one to play up to the newest received (gaps included)."""
        if self._next is None or self._highest is None:
            return 0
        return self._highest - self._next + 1

    def pop_item(self) -> object | None:
        """What is due at this tick: the stored item, `MISSING` (lost, or nothing newer arrived yet:
        conceal), or None before the stream has started. Lets a caller store encoded payloads and
        decode the items of many buffers together."""
        if not self._playing:
            if self._next is None or self.depth < self.target:
                return None
            self._playing = True
        if self._next is not None and self._highest is not None and self.depth > self.maximum:
            # Sender clock faster than ours (or a burst): skip ahead to the target delay.
            skip_to = self._highest - self.target + 1
            for ext in [e for e in self._frames if e < skip_to]:
                del self._frames[ext]
                self.trimmed += 1
            self._next = skip_to
        if self._next is not None and self._highest is not None and self._next <= self._highest:
            item = self._frames.pop(self._next, None)
            self._next += 1
            if item is not None:
                return item
            self.concealed += 1
        # A lost frame, or an underrun (nothing newer has arrived, so the position does not advance).
        return MISSING

    def played(self, frame: np.ndarray) -> None:
        """The decoded frame that was played: the source of concealment for the next gap."""
        self._last = frame
        self._concealed_run = 0

    def conceal(self) -> np.ndarray:
        """A frame for a gap: the last played one at decaying gain for a few ticks, then silence."""
        run = self._concealed_run
        self._concealed_run += 1
        if self._last is None or run >= len(_CONCEAL_GAINS):
            return self._silence
        return (self._last.astype(np.float32) * _CONCEAL_GAINS[run]).astype(np.int16)

    def pop(self) -> np.ndarray | None:
        """The frame due at this tick (items are decoded frames); None before the stream has started."""
        item = self.pop_item()
        if item is None:
            return None
        if item is MISSING:
            return self.conceal()
        self.played(item)  # type: ignore[arg-type]
        return item  # type: ignore[return-value]
