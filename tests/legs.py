"""Test double: an in-memory Leg that does what a transport does, minus the network.

`MemoryLeg(sample_rate)` is a real `media.leg.Leg`: a test feeds caller audio with `feed()` (paced on
the real shared `MediaClock`, one 20 ms frame per tick, like a transport delivering decoded frames), and
a sender task drains `outbound` on the same clock, recording every frame it "sent" with its time.
Data-channel messages the conversation sends are recorded in `events`; `hangup()` records the reason.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from media.frames import AudioFrame, samples_per_frame
from media.leg import Leg
from media.outbound import OutboundAudio
from media.pacing import MediaClock
from media.resample import resample
from media.wav import read_wav

SPEECH_CACHE = Path(tempfile.gettempdir()) / "talkwire-test-speech"


@functools.lru_cache(maxsize=16)
def espeak_speech(text: str, sample_rate: int) -> np.ndarray:
    """`text` spoken by espeak-ng (deterministic), mono int16 at `sample_rate`; cached on disk."""
    SPEECH_CACHE.mkdir(parents=True, exist_ok=True)
    path = SPEECH_CACHE / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.wav"
    if not path.exists():
        tmp = path.with_suffix(".part.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(tmp), text], check=True, timeout=30)
        tmp.replace(path)
    samples, rate = read_wav(path)
    return resample(samples, rate, sample_rate)


@dataclass(frozen=True, slots=True)
class SentFrame:
    at: float  # loop time of the tick that sent it
    samples: np.ndarray | None  # None: nothing was queued, the transport sent silence


class RecordingOutbound(OutboundAudio):
    """OutboundAudio that also notes when audio was pushed and when the queue was cleared."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate)
        self.pushes: list[tuple[float, int]] = []  # (loop time, samples)
        self.clears: list[tuple[float, int]] = []  # (loop time, samples dropped)

    def push(self, samples: np.ndarray) -> None:
        self.pushes.append((asyncio.get_running_loop().time(), len(samples)))
        super().push(samples)

    def clear(self) -> int:
        dropped = super().clear()
        self.clears.append((asyncio.get_running_loop().time(), dropped))
        return dropped


class MemoryLeg(Leg):
    kind: ClassVar[str] = "memory"
    channel: ClassVar[str] = "voice_web"

    def __init__(self, sample_rate: int, clock: MediaClock | None = None) -> None:
        super().__init__(sample_rate)
        self.outbound: RecordingOutbound = RecordingOutbound(sample_rate)
        self.clock = clock or MediaClock()
        self.frame_samples = samples_per_frame(sample_rate)
        self.sent: list[SentFrame] = []
        self.events_sent: list[dict[str, Any]] = []
        self.hangup_reason: str | None = None
        self._changed = asyncio.Condition()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name="memory-leg-sender")
        self.ended.add_done_callback(lambda _: self._sender.cancel())

    # ---- the Leg contract -------------------------------------------------------------------------

    async def send_event(self, message: dict) -> None:
        self.events_sent.append(message)
        await self._notify()

    async def hangup(self, reason: str) -> None:
        if self.hangup_reason is None:
            self.hangup_reason = reason
        self.finish(reason)
        await self._notify()

    # ---- what a test does -------------------------------------------------------------------------

    async def feed(self, samples: np.ndarray, *, realtime: bool = True) -> float:
        """Deliver caller audio as 20 ms frames (the last one zero-padded), one per clock tick when
        `realtime`. Returns the loop time the last frame was delivered."""
        n = -(-len(samples) // self.frame_samples)
        padded = np.zeros(n * self.frame_samples, dtype=np.int16)
        padded[:len(samples)] = samples
        loop = asyncio.get_running_loop()
        for frame in padded.reshape(n, self.frame_samples):
            if self.ended.done():
                break
            if realtime:
                await self.clock.tick()
            else:
                await asyncio.sleep(0)
            self.deliver_audio(AudioFrame(frame.copy(), self.sample_rate, loop.time()))
        return loop.time()

    async def feed_silence(self, seconds: float, *, realtime: bool = True) -> float:
        return await self.feed(np.zeros(int(seconds * self.sample_rate), dtype=np.int16), realtime=realtime)

    def remote_hangup(self, reason: str = "user_hangup") -> None:
        self.finish(reason)

    async def wait_for(self, predicate: Callable[["MemoryLeg"], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate(self)` holds; it is re-checked on each event and each sent frame."""
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))
        await asyncio.wait_for(check(), timeout)

    async def wait_event(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        await self.wait_for(lambda leg: any(predicate(e) for e in leg.events_sent), timeout)
        return next(e for e in self.events_sent if predicate(e))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events_sent if e.get("type") == kind]

    def sent_audio(self, since: float = 0.0) -> np.ndarray:
        """Everything sent since loop time `since`, silence ticks as zeros."""
        parts = [f.samples if f.samples is not None else np.zeros(self.frame_samples, np.int16)
                 for f in self.sent if f.at >= since]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def audio_frames_sent(self) -> int:
        return sum(1 for f in self.sent if f.samples is not None)

    async def close(self) -> None:
        self.finish("test_closed")
        self._sender.cancel()
        try:
            await self._sender
        except asyncio.CancelledError:
            pass

    # ---- internals --------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            tick = await self.clock.tick()
            self.sent.append(SentFrame(tick.scheduled + tick.lag, self.outbound.pop_frame()))
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
