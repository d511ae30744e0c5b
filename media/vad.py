"""Voice activity detection with WebRTC's VAD (the `webrtcvad-wheels` package), plus an energy gate.

`WebRtcVad` satisfies agent_runtime's `VoiceActivityDetector` protocol structurally (`sample_rate`,
`is_speech(frame)`); media/ does not import agent_runtime. WebRTC's VAD is an adaptive GMM on band
energies: started on steady noise it learns it, but once it has heard speech it calls quiet hiss in
the pauses speech (measured: -55 dBFS white noise after a spoken sentence, every frame at
aggressiveness 2), so a fake capture device or a hissing line would never let a turn end. Frames
quieter than `energy_gate_dbfs` are therefore never speech. Louder steady noise (-30 dBFS) passes the
gate and is called speech after speech at every aggressiveness. A few µs per frame: fine on the loop.
"""
from __future__ import annotations

import numpy as np
import webrtcvad

from media.dsp import FULL_SCALE

SUPPORTED_RATES = (8000, 16000, 32000, 48000)
SUPPORTED_FRAME_MS = (10, 20, 30)
DEFAULT_ENERGY_GATE_DBFS = -50.0


class WebRtcVad:
    def __init__(
        self,
        aggressiveness: int = 2,
        sample_rate: int = 16000,
        energy_gate_dbfs: float | None = DEFAULT_ENERGY_GATE_DBFS,
    ) -> None:
        """`aggressiveness` 0 (most speech kept) … 3 (most non-speech rejected); gate None disables it."""
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"webrtcvad takes {SUPPORTED_RATES} Hz, not {sample_rate}")
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError("aggressiveness is 0, 1, 2 or 3")
        self.sample_rate = sample_rate
        self.aggressiveness = aggressiveness
        self.energy_gate_dbfs = energy_gate_dbfs
        self._valid_lengths = {sample_rate * ms // 1000 for ms in SUPPORTED_FRAME_MS}
        # The gate as a mean square in int16 units: level < gate dBFS  <=>  mean square < this. Comparing
        # energies skips a log10 per frame (it cost more than the VAD itself).
        self._gate_mean_square = (None if energy_gate_dbfs is None
                                  else (FULL_SCALE * 10 ** (energy_gate_dbfs / 20)) ** 2)
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: np.ndarray) -> bool:
        """Whether one 10/20/30 ms int16 frame at `sample_rate` holds speech."""
        if frame.dtype != np.int16:
            raise TypeError(f"VAD takes int16 frames, got {frame.dtype}")
        if len(frame) not in self._valid_lengths:
            raise ValueError(f"a {len(frame)}-sample frame is not 10, 20 or 30 ms at {self.sample_rate} Hz")
        if self._gate_mean_square is not None:
            x = frame.astype(np.float32)
            if x.dot(x) < self._gate_mean_square * len(frame):
                return False
        return self._vad.is_speech(frame.astype("<i2", copy=False).tobytes(), self.sample_rate)
