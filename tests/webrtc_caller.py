"""A scriptable WebRTC caller for tests: an aiortc peer that behaves like the browser client.

    caller = WebRtcCaller("hello.wav")                 # mic plays the WAV (any rate), then silence forever
    await caller.call(base_url, agent_id, api_key)     # Phase 1 POST /calls/create, Phase 2 offer → worker_url
    await caller.wait_for_message("transcription")     # data-channel JSON from the server
    await caller.wait_for_audio(seconds=0.5)           # agent audio heard (non-silent)
    caller.send({"type": "client_context_update", ...})
    caller.save_wav(tmp_path / "heard.wav")
    await caller.close()

Without a server, join it to a leg directly:

    offer = await caller.create_offer()
    leg, answer = await WebRtcLeg.accept(offer, clock=clock, host_addresses=["127.0.0.1"])
    await caller.apply_answer(answer)
    await caller.wait_connected()

Like a browser it creates the data channel (label "talkwire") and offers; unlike Chrome it can gather on
127.0.0.1 (`host_addresses`, default loopback only), so tests need no network interface.
"""
from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soxr
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from control_api.loadtest.caller import ScriptedMic
from signalling.ice import restrict_host_addresses, rtc_configuration

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
SILENCE_RMS = 50.0  # int16 RMS below this counts as silence (Opus leaves tiny residue on digital silence)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the rate of a 16-bit PCM WAV (channels are averaged)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data, rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype=np.int16).tobytes())


def to_48k(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == RATE:
        return samples.astype(np.int16)
    return soxr.resample(samples.astype(np.int16), rate, RATE)


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


class CallerError(Exception):
    """Phase 1 or Phase 2 answered with an HTTP error; `status` and `body` say what it was."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class HeardFrame:
    time: float  # loop time it arrived
    rms: float
    samples: np.ndarray  # mono int16, 48 kHz


class WebRtcCaller:
    def __init__(
        self,
        audio: str | Path | np.ndarray | None = None,
        *,
        rate: int = RATE,
        label: str = "talkwire",
        host_addresses: tuple[str, ...] | list[str] = ("127.0.0.1",),
        ice_servers: list[dict] | tuple = (),
    ) -> None:
        if audio is None:
            samples = np.zeros(0, dtype=np.int16)
        elif isinstance(audio, np.ndarray):
            samples = to_48k(audio, rate)
        else:
            data, file_rate = read_wav(audio)
            samples = to_48k(data, file_rate)
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.mic = ScriptedMic()  # the load tester's microphone: plays clips in real time, silence between
        if len(samples):
            self.mic.play(samples)
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel(label)
        self.host_addresses = list(host_addresses)
        self.heard: list[HeardFrame] = []
        self.messages: list[dict] = []
        self.raw_messages: list[str] = []
        self.call_id: str | None = None
        self.worker_url: str | None = None
        self._opened = asyncio.Event()
        self.closed = asyncio.Event()  # the connection failed or closed (either side hung up)
        self._tasks: set[asyncio.Task] = set()
        self.channel.on("open", self._opened.set)
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

    async def wait_connected(self, timeout: float = 15) -> None:
        """Until the data channel is open (ICE, DTLS and SCTP are all up)."""
        await asyncio.wait_for(self._opened.wait(), timeout)

    async def create_call(self, client: httpx.AsyncClient, base_url: str, agent_id: str, api_key: str) -> dict:
        """Phase 1: POST /calls/create → {call_id, status, worker_url}."""
        response = await client.post(
            f"{base_url.rstrip('/')}/calls/create",
            json={"agent_id": agent_id, "type": "web"},
            headers={"X-API-Key": api_key},
        )
        body = _json(response)
        if response.status_code != 200:
            raise CallerError(response.status_code, body)
        self.call_id, self.worker_url = body["call_id"], body["worker_url"]
        return body

    async def post_offer(self, client: httpx.AsyncClient, worker_url: str) -> dict:
        """Phase 2: POST worker_url {sdp, type: "offer"} and apply the answer."""
        response = await client.post(worker_url, json={"sdp": await self.create_offer(), "type": "offer"})
        body = _json(response)
        if response.status_code != 200:
            raise CallerError(response.status_code, body)
        await self.apply_answer(body["sdp"])
        return body

    async def call(self, base_url: str, agent_id: str, api_key: str, *, timeout: float = 15) -> dict:
        """Phase 1 + Phase 2 against a running server, then wait until connected. Returns Phase 1's body."""
        async with httpx.AsyncClient(timeout=timeout) as client:
            created = await self.create_call(client, base_url, agent_id, api_key)
            await self.post_offer(client, created["worker_url"])
        await self.wait_connected(timeout)
        return created

    # ---- data channel -----------------------------------------------------------------------------

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message))

    def send_raw(self, text: str) -> None:
        self.channel.send(text)

    def _on_message(self, text: str | bytes) -> None:
        self.raw_messages.append(text if isinstance(text, str) else text.decode("utf8", "replace"))
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if isinstance(message, dict):
            self.messages.append(message)

    async def wait_for_message(
        self, match: str | Callable[[dict], bool], timeout: float = 15, *, after: int = 0
    ) -> dict:
        """The first message (from index `after`) whose type is `match` or for which `match(msg)` is true."""
        predicate = (lambda m: m.get("type") == match) if isinstance(match, str) else match

        def found() -> dict | None:
            return next((m for m in self.messages[after:] if predicate(m)), None)

        return await self._wait(found, timeout, lambda: f"no message matching {match!r}; got {self.messages}")

    # ---- audio heard ------------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            task = asyncio.get_running_loop().create_task(self._hear(track), name="caller-hear")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hear(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                data = frame.to_ndarray()
                channels = len(frame.layout.channels)
                mono = data.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1 else data[0]
                rms = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2)))
                self.heard.append(HeardFrame(loop.time(), rms, mono))
        except MediaStreamError:
            return

    def nonsilent(self, threshold: float = SILENCE_RMS) -> list[HeardFrame]:
        return [f for f in self.heard if f.rms >= threshold]

    def heard_audio(self, *, nonsilent_only: bool = False) -> np.ndarray:
        frames = self.nonsilent() if nonsilent_only else self.heard
        return np.concatenate([f.samples for f in frames]) if frames else np.zeros(0, dtype=np.int16)

    async def wait_for_audio(self, seconds: float = 0.2, timeout: float = 15) -> list[HeardFrame]:
        """Until at least `seconds` of non-silent audio has been heard; returns those frames."""
        needed = max(1, int(seconds * 50))

        def enough() -> list[HeardFrame] | None:
            frames = self.nonsilent()
            return frames if len(frames) >= needed else None

        return await self._wait(enough, timeout, lambda: f"heard {len(self.nonsilent())} non-silent frames")

    def save_wav(self, path: str | Path) -> None:
        write_wav(path, self.heard_audio())

    # ---- plumbing ---------------------------------------------------------------------------------

    async def _wait(self, check: Callable[[], Any], timeout: float, failure: Callable[[], str]) -> Any:
        """Poll `check` every 20 ms until it returns something other than None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := check()) is None:
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s: {failure()}")
            await asyncio.sleep(0.02)
        return result

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.closed.set()

    async def close(self) -> None:
        """Hang up from the caller's side."""
        self.mic.stop()
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.closed.set()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
