"""The aiortc caller: a peer that does what the browser SDK does, shared by the load tester and the tests.

Like a browser it creates the data channel (label "talkwire") and offers; unlike Chrome it can gather on
chosen addresses only (`host_addresses`, e.g. loopback), so it needs no network interface. Its microphone
(`ScriptedMic`) plays queued clips in real time with silence in between. Phase 1 is `POST /calls/create`
with the key, Phase 2 the offer to the returned `worker_url`.

Agent audio is timed as it arrives, not after aiortc's fixed 80 ms playout buffer (a browser's adaptive one
shrinks on a clean path): first audio and audio stopping after a barge-in are the server's doing, and a
playout policy of the caller's own would only add a constant.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from signalling.ice import restrict_host_addresses, rtc_configuration
from signalling.webrtc import use_immediate_audio_buffer

RATE = 48000
FRAME = RATE // 50  # 20 ms
# Decoded int16 RMS below this is silence: about -50 dBFS, far above what Opus leaves on digital silence and far
# below speech; the one threshold for "agent audio heard" in both the load tester and the tests.
SILENCE_RMS = 100.0

Message = dict[str, Any]


class CallerError(Exception):
    """Phase 1 or Phase 2 answered with an HTTP error; `status` and `body` say what it was."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class ScriptedMic(MediaStreamTrack):
    """Plays queued clips in real time, 20 ms per frame, silence in between; notes when each clip played."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._clip = np.zeros(0, dtype=np.int16)
        self._position = 0
        self._started: asyncio.Future[float] | None = None
        self._done: asyncio.Future[float] | None = None
        self._start: float | None = None
        self._index = 0
        self._silence = np.zeros((1, FRAME), dtype=np.int16)

    def play(self, samples: np.ndarray) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        """Start `samples` at the next frame; returns futures for when its first and last frames were sent."""
        loop = asyncio.get_running_loop()
        for future in (self._started, self._done):
            if future is not None and not future.done():
                future.cancel()
        self._clip, self._position = samples, 0
        self._started, self._done = loop.create_future(), loop.create_future()
        return self._started, self._done

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._index * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._position < len(self._clip):
            chunk = self._clip[self._position:self._position + FRAME]
            if self._position == 0 and self._started is not None and not self._started.done():
                self._started.set_result(loop.time())
            self._position += len(chunk)
            if self._position >= len(self._clip) and self._done is not None and not self._done.done():
                self._done.set_result(loop.time() + len(chunk) / RATE)
            if len(chunk) < FRAME:
                chunk = np.concatenate((chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)))
            data = chunk.reshape(1, -1)
        else:
            data = self._silence
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.time_base = Fraction(1, RATE)
        frame.pts = self._index * FRAME
        self._index += 1
        return frame


def rms(samples: np.ndarray) -> float:
    data = samples.astype(np.float64)
    return float(np.sqrt(np.mean(data * data))) if len(data) else 0.0


def mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame's samples as mono int16 (Opus decodes to packed stereo: the channels are averaged)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    return data.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1 else data[0]


class WebRtcPeer:
    """The caller's peer connection, microphone and data channel.

    `on_message(text, message)` gets each data-channel message (`message` is the parsed JSON object, or None
    when it is not one); `on_audio(samples, rms, arrival)` each decoded frame of agent audio (mono int16, 48 kHz,
    and the loop time it arrived). `closed` is set when the connection fails or closes (either side hung up).
    """

    def __init__(self, *, host_addresses: Iterable[str] = (), ice_servers: Iterable[dict[str, Any]] = (),
                 label: str = "talkwire", on_message: Callable[[str, Message | None], None] | None = None,
                 on_audio: Callable[[np.ndarray, float, float], None] | None = None) -> None:
        self.host_addresses = list(host_addresses)
        self.on_message = on_message or (lambda _text, _message: None)
        self.on_audio = on_audio or (lambda _samples, _rms, _arrival: None)
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.mic = ScriptedMic()
        use_immediate_audio_buffer(self.pc.addTransceiver(self.mic, direction="sendrecv").receiver)
        self.channel = self.pc.createDataChannel(label)
        self.call_id: str | None = None
        self.worker_url: str | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel.on("open", self.opened.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    # ---- signalling -------------------------------------------------------------------------------

    async def create_offer(self) -> str:
        offer = await self.pc.createOffer()
        restrict_host_addresses(self.pc, self.host_addresses)
        await self.pc.setLocalDescription(offer)  # gathers every candidate (non-trickle)
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def create_call(self, http: httpx.AsyncClient, base_url: str, agent_id: str, api_key: str) -> Message:
        """Phase 1: POST /calls/create → {call_id, status, worker_url}."""
        response = await http.post(f"{base_url.rstrip('/')}/calls/create", json={"agent_id": agent_id, "type": "web"},
                                   headers={"X-API-Key": api_key})
        body = response_body(response)
        if response.status_code != 200:
            raise CallerError(response.status_code, body)
        self.call_id, self.worker_url = body.get("call_id"), body["worker_url"]
        return body

    async def post_offer(self, http: httpx.AsyncClient, worker_url: str) -> Message:
        """Phase 2: POST worker_url {sdp, type: "offer"} and apply the answer."""
        response = await http.post(worker_url, json={"sdp": await self.create_offer(), "type": "offer"})
        body = response_body(response)
        if response.status_code != 200:
            raise CallerError(response.status_code, body)
        await self.apply_answer(body["sdp"])
        return body

    async def wait_connected(self, timeout: float = 15) -> None:
        """Until the data channel is open (ICE, DTLS and SCTP are all up)."""
        await asyncio.wait_for(self.opened.wait(), timeout)

    def send_raw(self, text: str) -> None:
        self.channel.send(text)

    # ---- what arrives -----------------------------------------------------------------------------

    def _on_message(self, text: str | bytes) -> None:
        decoded = text if isinstance(text, str) else text.decode("utf8", "replace")
        try:
            message = json.loads(decoded)
        except ValueError:
            message = None
        self.on_message(decoded, message if isinstance(message, dict) else None)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            task = asyncio.get_running_loop().create_task(self._hear(track), name="caller-hear")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hear(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                samples = mono(frame)
                self.on_audio(samples, rms(samples), loop.time())

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.closed.set()

    # ---- ending -----------------------------------------------------------------------------------

    async def inbound_rtp(self, timeout: float = 5.0) -> tuple[int, int] | None:
        """(packets received, packets lost) from aiortc's inbound-rtp stats, or None when they cannot be read."""
        with contextlib.suppress(Exception):
            stats = await asyncio.wait_for(self.pc.getStats(), timeout)
            for report in stats.values():
                if getattr(report, "type", None) == "inbound-rtp":
                    return int(report.packetsReceived), max(0, int(report.packetsLost))
        return None

    async def close(self, timeout: float = 10.0) -> None:
        """Hang up from the caller's side."""
        self.mic.stop()
        try:
            await asyncio.wait_for(self.pc.close(), timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.closed.set()


def response_body(response: httpx.Response) -> Any:
    """The JSON body, or the text when it is not JSON (an error page)."""
    try:
        return response.json()
    except ValueError:
        return response.text
