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

The peer itself is the load tester's (`loadtest.webrtc_peer.WebRtcPeer`: one aiortc caller for both, with one
silence threshold); this adds what tests look at: every message kept, every frame heard kept with its samples,
and waits on both. Unlike the load tester it gathers on 127.0.0.1 only by default (`host_addresses`), so tests
need no network interface.
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

from loadtest.webrtc_peer import RATE, SILENCE_RMS, CallerError, Message, WebRtcPeer

__all__ = ["RATE", "SILENCE_RMS", "CallerError", "HeardFrame", "WebRtcCaller", "dominant_frequency", "read_wav",
           "to_48k", "tone", "write_wav"]


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


@dataclass
class HeardFrame:
    time: float  # loop time it arrived
    rms: float
    samples: np.ndarray  # mono int16, 48 kHz


class WebRtcCaller(WebRtcPeer):
    def __init__(
        self,
        audio: str | Path | np.ndarray | None = None,
        *,
        rate: int = RATE,
        label: str = "talkwire",
        host_addresses: tuple[str, ...] | list[str] = ("127.0.0.1",),
        ice_servers: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(host_addresses=host_addresses, ice_servers=ice_servers, label=label,
                         on_message=self._keep_message, on_audio=self._keep_audio)
        self.heard: list[HeardFrame] = []
        self.messages: list[Message] = []
        self.raw_messages: list[str] = []
        if audio is not None:
            if isinstance(audio, np.ndarray):
                samples = to_48k(audio, rate)
            else:
                data, file_rate = read_wav(audio)
                samples = to_48k(data, file_rate)
            if len(samples):
                self.mic.play(samples)  # the microphone plays it, then silence forever

    async def call(self, base_url: str, agent_id: str, api_key: str, *, timeout: float = 15) -> Message:
        """Phase 1 + Phase 2 against a running server, then wait until connected. Returns Phase 1's body."""
        async with httpx.AsyncClient(timeout=timeout) as client:
            created = await self.create_call(client, base_url, agent_id, api_key)
            await self.post_offer(client, created["worker_url"])
        await self.wait_connected(timeout)
        return created

    # ---- data channel -----------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        self.send_raw(json.dumps(message))

    def _keep_message(self, text: str, message: Message | None) -> None:
        self.raw_messages.append(text)
        if message is not None:
            self.messages.append(message)

    async def wait_for_message(
        self, match: str | Callable[[Message], bool], timeout: float = 15, *, after: int = 0
    ) -> Message:
        """The first message (from index `after`) whose type is `match` or for which `match(msg)` is true."""
        predicate = (lambda m: m.get("type") == match) if isinstance(match, str) else match

        def found() -> Message | None:
            return next((m for m in self.messages[after:] if predicate(m)), None)

        return await self._wait(found, timeout, lambda: f"no message matching {match!r}; got {self.messages}")

    # ---- audio heard ------------------------------------------------------------------------------

    def _keep_audio(self, samples: np.ndarray, rms: float, arrival: float) -> None:
        self.heard.append(HeardFrame(arrival, rms, samples))

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
