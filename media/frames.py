"""The unit of audio that flows through Talkwire: 20 ms of mono int16 PCM at a known rate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20


def samples_per_frame(sample_rate: int) -> int:
    """Samples in one 20 ms frame at `sample_rate` (22050 Hz gives 441)."""
    return sample_rate * FRAME_MS // 1000


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Mono int16 samples at `sample_rate`; `timestamp` is seconds on the producer's clock."""

    samples: np.ndarray
    sample_rate: int
    timestamp: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @classmethod
    def silence(cls, sample_rate: int, timestamp: float = 0.0) -> AudioFrame:
        return cls(np.zeros(samples_per_frame(sample_rate), dtype=np.int16), sample_rate, timestamp)
