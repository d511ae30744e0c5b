"""The Leg contract: how audio and events reach one caller, whatever the transport.

A leg knows no agent and an agent knows no transport; both meet here.

    transport ──► leg.inbound  (AudioFrame: mono int16, 20 ms, at leg.sample_rate; None = stream ended)
                  or, once a consumer is connected with `consume()`, straight to it, in the transport's tick
    transport ──► leg.events   (dict: data-channel JSON on WebRTC, {"type": "dtmf", ...} on SIP)
    conversation ──► leg.outbound.push(samples at leg.sample_rate)   paced out by the shared MediaClock
    conversation ──► await leg.send_event(dict)                      data channel (no-op where there is none)
    either side  ──► await leg.hangup(reason);  leg.ended resolves with the reason when the leg is over

A `FrameTap` (the call recorder) attached with `attach_tap()` sees every inbound frame and every outbound tick
(silence included), so both directions stay aligned on one timeline.

Why two ways in. A queue costs a task wake-up per frame per call (most of a phone call's CPU at hundreds of
calls per core), so the conversation connects a synchronous consumer instead: the transport's tick hands it
each frame directly, and its per-frame work (VAD, turn detection: microseconds) runs right there. Simple
readers (tests, the load tester's listener) keep the queue.
"""
from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Protocol

import numpy as np

from media.frames import AudioFrame
from media.outbound import OutboundAudio

log = logging.getLogger(__name__)

INBOUND_QUEUE_FRAMES = 250  # 5 s of audio; beyond that the consumer is stuck and we drop the oldest


class FrameTap(Protocol):
    def add_caller(self, frame: AudioFrame) -> None: ...

    def add_agent(self, frame: AudioFrame) -> None: ...


FrameConsumer = Callable[[AudioFrame], None]


class LegCapabilityError(Exception):
    """The leg's transport cannot do what was asked (e.g. a SIP REFER on a browser call)."""


class TransferFailed(Exception):
    """`leg.transfer()` did not hand the caller over (refused, or the target did not answer); the call goes on."""

    def __init__(self, message: str, sip_status: int | None = None) -> None:
        super().__init__(message)
        self.sip_status = sip_status


class Leg(ABC):
    kind: ClassVar[str]  # "webrtc" | "sip"
    channel: ClassVar[str]  # tool channel this leg serves: "voice_web" | "voice_sip"

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.inbound: asyncio.Queue[AudioFrame | None] = asyncio.Queue(INBOUND_QUEUE_FRAMES)
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.outbound = OutboundAudio(sample_rate)
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tap: FrameTap | None = None
        self._consumer: FrameConsumer | None = None
        # Caller messages the transport refused (malformed; over the rate): the call session counts them.
        self.invalid_messages = 0
        self.rate_limited_messages = 0

    def attach_tap(self, tap: FrameTap) -> None:
        self._tap = tap
        silence = np.zeros(self.outbound.frame_samples, dtype=np.int16)

        def on_sent(samples: np.ndarray | None) -> None:
            tap.add_agent(AudioFrame(silence if samples is None else samples, self.sample_rate))

        self.outbound.tap = on_sent

    def consume(self, consumer: FrameConsumer | None) -> None:
        """Hand every inbound frame to `consumer` as it is delivered instead of queueing it (frames already
        queued go to it first); None goes back to the queue. The consumer must return within microseconds
        and never raise: it runs inside the transport's media tick, for every call of the worker."""
        self._consumer = consumer
        if consumer is not None:
            while not self.inbound.empty():
                frame = self.inbound.get_nowait()
                if frame is not None:
                    consumer(frame)

    def deliver_audio(self, frame: AudioFrame) -> None:
        """Called by the transport for each decoded inbound frame; never blocks."""
        if self._tap is not None:
            self._tap.add_caller(frame)
        if self._consumer is not None:
            self._consumer(frame)
            return
        if self.inbound.full():
            self.inbound.get_nowait()
        self.inbound.put_nowait(frame)

    def deliver_event(self, message: dict) -> None:
        self.events.put_nowait(message)

    def finish(self, reason: str) -> None:
        """Mark the leg over (idempotent): wakes the conversation's readers and resolves `ended`."""
        if self.ended.done():
            return
        self.ended.set_result(reason)
        if self.inbound.full():
            self.inbound.get_nowait()
        self.inbound.put_nowait(None)

    @abstractmethod
    async def send_event(self, message: dict) -> None:
        """Send a JSON message to the client (data channel). Legs without one ignore it."""

    @abstractmethod
    async def hangup(self, reason: str) -> None:
        """End the call from our side, then `finish(reason)`."""

    async def transfer(self, target: str) -> None:
        """Hand the caller to `target` (SIP REFER). Raises LegCapabilityError where unsupported."""
        raise LegCapabilityError(f"{self.kind} legs cannot transfer calls")

    async def send_dtmf(self, digits: str) -> None:
        raise LegCapabilityError(f"{self.kind} legs cannot send DTMF")
