"""Speech start and end from per-frame VAD decisions, and the caller's utterance audio.

Pure and synchronous (one call per 20 ms frame, no I/O), so the conversation runs it on the loop and
tests drive it frame by frame. Timing is counted in frames, not wall-clock time, so a late event loop
never cuts a turn short.

- Start: `start_frames` voiced frames among the last `start_window` (3 of 4 by default), which ignores
  clicks and single noisy frames; the utterance begins `preroll_ms` before the first of them.
- End: `endpointing_ms` of consecutive non-speech after speech, or `max_utterance_ms` in all.
"""
from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np

from media.frames import FRAME_MS

TurnEvent = Literal["start", "end"]
TAIL_MS = 100  # non-speech kept after the last voiced frame (word endings are quiet)


class TurnDetector:
    def __init__(
        self,
        *,
        endpointing_ms: int = 500,
        preroll_ms: int = 300,
        start_frames: int = 3,
        start_window: int = 4,
        max_utterance_ms: int = 30000,
        frame_ms: int = FRAME_MS,
    ) -> None:
        if not 1 <= start_frames <= start_window:
            raise ValueError("need 1 <= start_frames <= start_window")
        self.frame_ms = frame_ms
        self.end_frames = max(1, endpointing_ms // frame_ms)
        self.start_frames = start_frames
        self.max_frames = max(1, max_utterance_ms // frame_ms)
        self._recent: deque[bool] = deque(maxlen=start_window)
        self._preroll: deque[np.ndarray] = deque(maxlen=max(start_window, preroll_ms // frame_ms + start_window))
        self._preroll_frames = preroll_ms // frame_ms
        self._frames: list[np.ndarray] = []
        self._silent_run = 0
        self.speaking = False

    def feed(self, frame: np.ndarray, voiced: bool) -> TurnEvent | None:
        """One frame and its VAD decision; returns "start" or "end" when the caller's turn changes."""
        if not self.speaking:
            self._recent.append(voiced)
            self._preroll.append(frame)
            if sum(self._recent) < self.start_frames:
                return None
            # Begin preroll_ms before the first voiced frame of the window that triggered.
            window = list(self._recent)
            first_voiced = len(window) - window.index(True)  # frames back from the newest
            keep = min(len(self._preroll), first_voiced + self._preroll_frames)
            self._frames = list(self._preroll)[-keep:]
            self._preroll.clear()
            self._recent.clear()
            self._silent_run = 0
            self.speaking = True
            return "start"
        self._frames.append(frame)
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self.end_frames or len(self._frames) >= self.max_frames:
            self.speaking = False
            return "end"
        return None

    def utterance(self) -> np.ndarray:
        """The current (or just ended) utterance; after an end, trailing silence beyond TAIL_MS is cut."""
        frames = self._frames
        if not self.speaking and self._silent_run:
            drop = max(0, self._silent_run - self.tail_frames)
            frames = frames[:len(frames) - drop] if drop else frames
        return np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)

    @property
    def silent_frames(self) -> int:
        """Non-speech frames since the last voiced one in the current utterance (0 while voiced)."""
        return self._silent_run

    @property
    def tail_frames(self) -> int:
        """The non-speech frames `utterance()` keeps after the last voiced one once the turn ended: when
        `silent_frames` equals it, the utterance so far is exactly what the end of the turn would hand
        over if no more speech came."""
        return TAIL_MS // self.frame_ms

    def reset(self) -> None:
        """Forget everything (the mic was muted, or the utterance was taken)."""
        self._recent.clear()
        self._preroll.clear()
        self._frames = []
        self._silent_run = 0
        self.speaking = False
