"""The WebRTC leg: a browser (or any WebRTC peer) on aiortc.

    leg, answer_sdp = await WebRtcLeg.accept(offer_sdp, ice_servers=[...], host_addresses=[...], clock=clock)

Inbound: the caller's audio track is decoded by aiortc (Opus → 48 kHz s16, usually stereo packed),
downmixed to mono int16 and re-framed to exact 20 ms `AudioFrame`s for `deliver_audio()`.

Outbound: `AgentAudioTrack.recv()` awaits the worker's shared `MediaClock` and pops one frame from
`leg.outbound` per tick (silence when the agent has nothing to say). aiortc's RTP sender calls `recv()` in
a loop, so the shared clock sets the 20 ms cadence of every call at once.

Events: the browser creates the data channel (any label). Each message must be a JSON object of at most
`MAX_MESSAGE_BYTES`, nested at most `safe_json.MAX_DEPTH` deep, with finite numbers; anything else is answered
with `{"type": "error", "code": "INVALID_MESSAGE" | "MESSAGE_TOO_LARGE" | "MESSAGE_TOO_DEEP" | "INVALID_NUMBER",
"message": ...}` and the call carries on. Beyond `MESSAGES_PER_SECOND` (burst `MESSAGE_BURST`) messages are
dropped, with one `RATE_LIMITED` error a second at most.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from fractions import Fraction
from typing import Any, cast

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_gt

from media import safe_json
from media.end_reason import EndReason
from media.frames import AudioFrame, samples_per_frame
from media.leg import Leg
from media.pacing import MediaClock
from media.tasks import cancel_and_wait
from media.token_bucket import TokenBucket
from signalling.ice import restrict_host_addresses, rtc_configuration

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = samples_per_frame(SAMPLE_RATE)  # 960
TIME_BASE = Fraction(1, SAMPLE_RATE)
PENDING_MESSAGES = 500  # kept for a data channel that is not open yet; beyond that the oldest go
MAX_MESSAGE_BYTES = 64 * 1024  # one data-channel message; the protocol's largest (context updates) are far smaller
MESSAGES_PER_SECOND = 20  # data-channel messages a caller may send; the SDK sends a few per tool call at most
MESSAGE_BURST = 60
MESSAGE_ERRORS = {"TOO_LARGE": "MESSAGE_TOO_LARGE", "TOO_DEEP": "MESSAGE_TOO_DEEP", "INVALID_NUMBER": "INVALID_NUMBER"}


class InvalidOffer(ValueError):
    """The offer SDP cannot start a call (not SDP, no audio section, unusable ICE/DTLS parameters)."""


class ImmediateAudioBuffer(JitterBuffer):
    """Hands each caller audio packet to the decoder the moment it arrives.

    aiortc's audio receiver holds 4 packets (80 ms) before decoding, to smooth playout. The server never
    plays the caller's audio out: it feeds the VAD and STT, which want it as early as possible — those
    80 ms were most of the web barge-in latency measured at the caller. One Opus RTP packet is one whole
    frame, so nothing needs assembling; a late or duplicated packet is dropped instead of reordered.
    """

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last: int | None = None  # sequence number of the newest packet handed on

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if self._last is not None and not uint16_gt(packet.sequence_number, self._last):
            return False, None
        self._last = packet.sequence_number
        # aiortc's receiver sets `_data` (the payload) on each packet; its own buffer reads it the same way.
        return False, JitterFrame(packet._data, packet.timestamp)  # type: ignore[attr-defined]


def use_immediate_audio_buffer(receiver: RTCRtpReceiver) -> None:
    """Swap aiortc's playout jitter buffer for ImmediateAudioBuffer on an audio receiver.

    aiortc has no option for this; its receiver keeps the buffer in a private (name-mangled) attribute,
    whose presence tests/test_webrtc_leg.py checks so an aiortc upgrade that moves it fails loudly.
    """
    attribute = "_RTCRtpReceiver__jitter_buffer"
    if not hasattr(receiver, attribute):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer has the jitter buffer attribute Talkwire replaces")
    setattr(receiver, attribute, ImmediateAudioBuffer())


class AgentAudioTrack(MediaStreamTrack):
    """The agent's voice: one 20 ms frame per shared clock tick, popped from the leg's outbound queue.

    If the sender comes back late (encoding in aiortc's thread pool took longer than a tick under load),
    the ticks it missed are served at once instead of waiting for the next one, so the track still
    yields 50 frames a second and the caller hears no slow-down. The clock re-anchors after long stalls,
    which bounds such a catch-up to a few frames.
    """

    kind = "audio"

    def __init__(self, leg: WebRtcLeg, clock: MediaClock) -> None:
        super().__init__()
        self._leg = leg
        self._clock = clock
        self._pts = 0
        self._next_tick: int | None = None  # index of the first tick not yet served
        self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        last = self._clock.last
        if self._next_tick is not None and last is not None and last.index >= self._next_tick:
            self._next_tick += 1  # a tick we have not served yet is already past: serve it now
        else:
            tick = await self._clock.tick()
            self._next_tick = tick.index + 1
        if self.readyState != "live":
            raise MediaStreamError
        samples = self._leg.outbound.pop_frame()
        frame = av.AudioFrame.from_ndarray(
            self._silence if samples is None else samples.reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return frame


class WebRtcLeg(Leg):
    kind = "webrtc"
    channel = "voice_web"

    def __init__(self, pc: RTCPeerConnection, clock: MediaClock) -> None:
        super().__init__(SAMPLE_RATE)
        self.pc = pc
        self.clock = clock
        self.track = AgentAudioTrack(self, clock)
        self.data_channel: RTCDataChannel | None = None
        self.max_message_bytes = MAX_MESSAGE_BYTES
        self._message_budget = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self._rate_notice = TokenBucket(1.0, 1)
        self.connected = asyncio.Event()  # set once ICE and DTLS are up (media can flow)
        self._pending: deque[str] = deque(maxlen=PENDING_MESSAGES)  # sent before the data channel opened
        self._tasks: set[asyncio.Task] = set()
        self._remainder: np.ndarray = np.zeros(0, dtype=np.int16)  # inbound samples short of a whole frame
        self._resampler: av.AudioResampler | None = None
        self._closing = False
        self._shutdown_task: asyncio.Task | None = None
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)

    # ---- set-up -----------------------------------------------------------------------------------

    @classmethod
    async def accept(
        cls,
        offer_sdp: str,
        *,
        clock: MediaClock,
        ice_servers: Iterable[dict[str, Any]] = (),
        host_addresses: Sequence[str] = (),
    ) -> tuple[WebRtcLeg, str]:
        """Answer a browser's offer. Returns the leg and the answer SDP (all candidates included).

        Raises InvalidOffer when the offer cannot start a call; nothing is left running then.
        """
        if not isinstance(offer_sdp, str) or not offer_sdp.lstrip().startswith("v="):
            raise InvalidOffer("offer is not an SDP document (it must start with 'v=')")
        if "\nm=audio" not in offer_sdp.replace("\r\n", "\n"):
            raise InvalidOffer("offer has no audio section")
        pc = RTCPeerConnection(rtc_configuration(ice_servers))
        leg = cls(pc, clock)
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError… on bad SDP
                raise InvalidOffer(f"malformed offer SDP: {exc or type(exc).__name__}") from exc
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise InvalidOffer("offer has no audio section")
            audio[0].sender.replaceTrack(leg.track)
            audio[0].direction = "sendrecv"
            use_immediate_audio_buffer(audio[0].receiver)
            restrict_host_addresses(pc, host_addresses)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except BaseException:
            leg._closing = True
            leg.track.stop()
            await pc.close()
            leg.finish(EndReason.LEG_FAILED)
            raise
        return leg, pc.localDescription.sdp

    # ---- inbound audio ----------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        self._spawn(self._receive(track), "webrtc-inbound")

    async def _receive(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self._deliver(cast(av.AudioFrame, frame))  # an audio track yields audio frames
        except MediaStreamError:
            self._remote_end("inbound track ended")

    def _deliver(self, frame: av.AudioFrame) -> None:
        if frame.format.name != "s16" or frame.sample_rate != SAMPLE_RATE:
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for converted in self._resampler.resample(frame):
                self._deliver(converted)
            return
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        mono: np.ndarray
        if channels == 1:
            mono = data.reshape(-1)
        else:  # packed s16: (1, samples × channels); average the channels in one vectorised op
            mono = data.reshape(-1, channels).mean(axis=1, dtype=np.float32).astype(np.int16)
        timestamp = float(frame.time) if frame.time is not None else 0.0
        if not len(self._remainder) and len(mono) == FRAME_SAMPLES:  # the usual case: one 20 ms packet
            self.deliver_audio(AudioFrame(mono, SAMPLE_RATE, timestamp))
            return
        if len(self._remainder):
            timestamp -= len(self._remainder) / SAMPLE_RATE
            mono = np.concatenate((self._remainder, mono))
        whole = len(mono) // FRAME_SAMPLES * FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            self.deliver_audio(
                AudioFrame(mono[start:start + FRAME_SAMPLES], SAMPLE_RATE, timestamp + start / SAMPLE_RATE)
            )
        self._remainder = mono[whole:]

    # ---- data channel -----------------------------------------------------------------------------

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.data_channel is not None:
            log.debug("ignoring extra data channel %r", channel.label)
            return
        self.data_channel = channel
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self._flush_pending()
        else:
            channel.on("open", self._flush_pending)

    def _flush_pending(self) -> None:
        channel = self.data_channel
        assert channel is not None  # called once the channel is there
        pending, self._pending = self._pending, deque(maxlen=PENDING_MESSAGES)
        for text in pending:
            channel.send(text)

    def _on_message(self, message: str | bytes) -> None:
        """Any message from the browser, however hostile, is answered or delivered; none can end the call."""
        if self._message_budget.take() is not None:
            self.rate_limited_messages += 1
            if self._rate_notice.take() is None:  # say so at most once a second, not once per flooded message
                self._refuse("RATE_LIMITED", f"more than {MESSAGES_PER_SECOND} messages a second; message dropped")
            return
        try:
            obj = safe_json.parse(message, max_bytes=self.max_message_bytes)
        except safe_json.UnsafeJson as exc:
            self._refuse(MESSAGE_ERRORS.get(exc.code, "INVALID_MESSAGE"), exc.message)
            return
        if not isinstance(obj, dict):
            self._refuse("INVALID_MESSAGE", "data-channel messages must be JSON objects")
            return
        self.deliver_event(obj)

    def _refuse(self, code: str, message: str) -> None:
        self.invalid_messages += 1
        self._send_text(json.dumps({"type": "error", "code": code, "message": message}))

    async def send_event(self, message: dict) -> None:
        self._send_text(json.dumps(message))

    def _send_text(self, text: str) -> None:
        channel = self.data_channel
        if channel is None:
            if not self._closing and not self.ended.done():
                self._pending.append(text)
            else:
                log.debug("call over, dropping data-channel message %.80s", text)
            return
        if channel.readyState == "connecting":
            self._pending.append(text)
        elif channel.readyState == "open":
            channel.send(text)
        else:
            log.debug("data channel %s, dropping message %.80s", channel.readyState, text)

    # ---- ending -----------------------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.connected.set()
        elif self.pc.connectionState in ("failed", "closed"):
            self._remote_end(f"connection {self.pc.connectionState}")

    def _remote_end(self, why: str) -> None:
        if self._closing:
            return
        log.debug("webrtc leg ended by the remote side: %s", why)
        self.finish(EndReason.REMOTE_HANGUP)
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(), name="webrtc-close")

    async def hangup(self, reason: str) -> None:
        if self._shutdown_task is None:
            self._closing = True
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(), name="webrtc-close")
        await asyncio.shield(self._shutdown_task)
        self.finish(reason)

    async def _shutdown(self) -> None:
        self._closing = True
        self.track.stop()
        await self.pc.close()
        await cancel_and_wait([t for t in self._tasks if t is not asyncio.current_task()])

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
