"""One synthetic web caller: an aiortc peer that does what the browser SDK does, and measures the call.

Phase 1 `POST /calls/create` (type web, with the key), Phase 2 the SDP offer to `worker_url`, a data channel
(label "talkwire") whose `client_tool_call`s are acknowledged at once (and answered `{"ok": true}` when
blocking), and a microphone track that plays the script's turns in real time. Everything is measured here,
at the caller, so it includes the network, the jitter buffer and decoding:

- setup_ms          Phase 1 sent → data channel open and the first audio packet received
- first_audio_ms    Phase 1 sent → first non-silent agent audio (the welcome message)
- response_ms       per speech turn: the caller's last speech frame sent → first agent audio after it
- barge_in_ms       per barge-in: the caller's first frame spoken over the agent → agent audio stops arriving
- gaps, max_gap_ms  received audio: intervals between decoded frames over GAP_MS, and the longest
- packets_*         from aiortc's inbound-rtp stats
- wer               the server's final user transcripts against the words spoken
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from control_api.loadtest.audio import BARGE_SENTENCE, RATE, SpeechCache, Turn, noise, words
from control_api.loadtest.stats import wer
from signalling.ice import restrict_host_addresses, rtc_configuration
from signalling.webrtc import use_immediate_audio_buffer

FRAME = RATE // 50  # 20 ms
SILENCE_RMS = 100.0  # decoded int16 RMS below this is silence (Opus leaves residue on digital silence)
QUIET_S = 0.6  # without agent_state messages: the agent has finished after this long without audio
AFTER_STATE_S = 0.2  # with them: this long without audio after the state went back to listening
GAP_MS = 60.0
ANSWER_TIMEOUT = 15.0
BARGE_AFTER_S = 0.3  # talk over the agent once it has been answering this long
STOPPED_FRAMES = 5  # barge-in: agent audio "stopped" = this many silent frames in a row


class CallFailed(Exception):
    """The call could not be set up or broke off; the message says where."""


@dataclass
class CallResult:
    index: int
    call_id: str | None = None
    ok: bool = False
    error: str | None = None
    setup_ms: float | None = None
    first_audio_ms: float | None = None
    response_ms: list[float] = field(default_factory=list)
    barge_in_ms: list[float] = field(default_factory=list)
    unanswered_turns: int = 0
    turns: int = 0
    frames_received: int = 0
    gaps: int = 0
    max_gap_ms: float | None = None
    packets_received: int | None = None
    packets_lost: int | None = None
    tool_calls_acked: int = 0
    spoken: list[str] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    wer: float | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["response_ms"] = [round(v, 1) for v in self.response_ms]
        data["barge_in_ms"] = [round(v, 1) for v in self.barge_in_ms]
        for key in ("setup_ms", "first_audio_ms", "max_gap_ms", "seconds"):
            if data[key] is not None:
                data[key] = round(data[key], 1)
        return data


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


class ScriptedCall(ABC):
    """One call following the script: `await run(...)` sets it up, plays the script until `duration` is over
    (or `max_turns` turns are done), hangs up. Transports implement `_connect`, `play` and `_finish_media`."""

    def __init__(self, index: int, speech: SpeechCache, script: tuple[Turn, ...], *, echo: bool = False,
                 max_turns: int | None = None, on_progress: Callable[[str], None] | None = None) -> None:
        self.result = CallResult(index)
        self.speech = speech
        self.script = script
        self.echo = echo  # against the echo baseline: only set-up and media, no turn-taking to measure
        self.max_turns = max_turns  # hang up after this many turns (else when the duration is over)
        self.on_progress = on_progress or (lambda _state: None)
        self._first_packet = asyncio.Event()
        self.transcripts_known = True  # the words the server heard can be read (data channel, call record)
        self.closed = asyncio.Event()  # the call dropped (or we hung up)
        self._hangup = False
        self.agent_state: str | None = None  # the last agent_state message (None: the server sends none)
        # Heard audio: arrival time and loudness of every frame (the samples are not kept).
        self.times: list[float] = []
        self.loud: list[bool] = []
        self._tasks: set[asyncio.Task] = set()

    # ---- what a transport provides ------------------------------------------------------------------

    @abstractmethod
    async def _connect(self, http: httpx.AsyncClient, base_url: str, agent_id: str, key: str) -> None:
        """Phase 1 and whatever brings media up; returns once the first agent packet arrived."""

    @abstractmethod
    def play(self, samples: np.ndarray) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        """Speak 48 kHz `samples` now; futures for when the first and the last frame were sent."""

    @abstractmethod
    async def _finish_media(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        """Read the transport's statistics (and transcripts where they come afterwards), hang up, stop tasks."""

    def _heard(self, samples: np.ndarray) -> None:
        data = samples.astype(np.float32)
        self.times.append(asyncio.get_running_loop().time())
        self.loud.append(float(np.mean(data * data)) >= SILENCE_RMS ** 2)
        self._first_packet.set()

    # ---- the call ---------------------------------------------------------------------------------

    async def run(self, http: httpx.AsyncClient, base_url: str, agent_id: str, key: str, duration: float,
                  *, setup_timeout: float = 30.0) -> CallResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = self.result
        try:
            self.on_progress("setting up")
            await asyncio.wait_for(self._connect(http, base_url, agent_id, key), setup_timeout)
            result.setup_ms = (loop.time() - started) * 1000
            self.on_progress("up")
            remaining = duration - (loop.time() - started)
            script = self._talk_echo() if self.echo else self._talk(started)
            try:
                await asyncio.wait_for(self._unless_closed(script), max(remaining, 0.1))
            except asyncio.TimeoutError:
                pass  # the call's time is up: hang up mid-turn
            if self.closed.is_set() and not self._hangup:
                raise CallFailed("the server ended the call early")
            if result.first_audio_ms is None and not self.echo:
                raise CallFailed("no agent audio heard")
            if result.unanswered_turns:
                raise CallFailed(f"{result.unanswered_turns} turn(s) got no answer within {ANSWER_TIMEOUT:.0f} s")
            result.ok = True
        except CallFailed as exc:
            result.error = str(exc)
        except asyncio.TimeoutError:
            result.error = f"set-up took over {setup_timeout:.0f} s"
        except httpx.HTTPError as exc:
            result.error = f"HTTP: {exc!r}"
        except Exception as exc:  # any other breakage is this call's failure, reported, not raised
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._hangup = True
            await self._finish_media(http, base_url, key)
            self.closed.set()
            self._summarize(started)
        self.on_progress("ok" if result.ok else "failed")
        return result

    async def _unless_closed(self, script: Any) -> None:
        """Run the script until it ends or the connection drops, whichever is first."""
        task = asyncio.ensure_future(script)
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, closed):
                pending.cancel()
            await asyncio.gather(task, closed, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()

    async def _talk(self, started: float) -> None:
        """The script, over and over until the call's time is up."""
        loop = asyncio.get_running_loop()
        first = await self._audio_after(started, ANSWER_TIMEOUT * 2)
        if first is None:
            raise CallFailed("no welcome message heard")
        self.result.first_audio_ms = (first - started) * 1000
        await self._quiet()
        while True:
            for turn in self.script:
                self.on_progress(turn.kind)
                await self._turn(turn, loop)
                self.result.turns += 1
                if self.max_turns is not None and self.result.turns >= self.max_turns:
                    return

    async def _talk_echo(self) -> None:
        """Against the echo server: speak the script's sentences back to back (media only)."""
        while True:
            for turn in self.script:
                if turn.text:
                    _, done = self.play(await self.speech.get(turn.text))
                    await done
                    self.result.turns += 1

    async def _turn(self, turn: Turn, loop: asyncio.AbstractEventLoop) -> None:
        if turn.kind in ("silence", "noise"):
            if turn.kind == "noise":
                self.play(noise(turn.seconds, seed=self.result.index))
            await asyncio.sleep(turn.seconds)
            await self._quiet()
            return
        ended = await self._say(turn.text)
        answer = await self._audio_after(ended, ANSWER_TIMEOUT)
        if answer is None:
            self.result.unanswered_turns += 1
            return
        self.result.response_ms.append((answer - ended) * 1000)
        if turn.kind == "barge_in":
            await asyncio.sleep(BARGE_AFTER_S)
            if self._speaking_now():
                begun, done = self.play(await self.speech.get(BARGE_SENTENCE))
                self.result.spoken.append(BARGE_SENTENCE)
                spoke_at = await begun
                stopped = await self._silent_after(spoke_at, ANSWER_TIMEOUT)
                if stopped is not None:
                    self.result.barge_in_ms.append((stopped - spoke_at) * 1000)
                ended = await done
                if await self._audio_after(ended, ANSWER_TIMEOUT) is None:
                    self.result.unanswered_turns += 1
        await self._quiet()

    async def _say(self, text: str) -> float:
        """Play a sentence; returns the loop time its last frame was sent (the end of the caller's speech)."""
        _, done = self.play(await self.speech.get(text))
        self.result.spoken.append(text)
        return await done

    def _speaking_now(self) -> bool:
        return bool(self.loud) and any(self.loud[-3:])

    async def _audio_after(self, after: float, timeout: float) -> float | None:
        """Arrival time of the first loud frame that arrived after `after`, or None within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        start = 0
        while loop.time() < deadline:
            n = len(self.times)
            for i in range(max(start, _first_index_after(self.times, after)), n):
                if self.loud[i]:
                    return self.times[i]
            start = n
            await asyncio.sleep(0.01)
        return None

    async def _silent_after(self, after: float, timeout: float) -> float | None:
        """Arrival time of the first frame after `after` that begins STOPPED_FRAMES silent frames in a row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            first = _first_index_after(self.times, after)
            run = 0
            for i in range(first, len(self.times)):
                run = 0 if self.loud[i] else run + 1
                if run == STOPPED_FRAMES:
                    return self.times[i - STOPPED_FRAMES + 1]
            await asyncio.sleep(0.02)
        return None

    async def _quiet(self, timeout: float = 60.0) -> None:
        """Until the agent has finished speaking.

        With `agent_state` messages (Talkwire sends them), finished = the last state is `listening` and no
        audio for AFTER_STATE_S (what was sent before the state change is still in flight). A server that sends
        none is judged by the audio alone: QUIET_S without any (pauses between sentences can be long under load).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            last_loud = next((self.times[i] for i in range(len(self.loud) - 1, -1, -1) if self.loud[i]), None)
            silent_for = float("inf") if last_loud is None else loop.time() - last_loud
            if self.agent_state is None and silent_for >= QUIET_S:
                return
            if self.agent_state == "listening" and silent_for >= AFTER_STATE_S:
                return
            await asyncio.sleep(0.05)


    def _summarize(self, started: float) -> None:
        result = self.result
        times = np.array(self.times)
        result.frames_received = len(times)
        if len(times) > 1:
            intervals = np.diff(times) * 1000
            result.gaps = int(np.count_nonzero(intervals > GAP_MS))
            result.max_gap_ms = float(intervals.max())
        if not self.echo and self.transcripts_known:
            result.wer = wer([w for text in result.spoken for w in words(text)],
                             [w for text in result.transcripts for w in words(text)])
        result.seconds = asyncio.get_running_loop().time() - started


class WebCaller(ScriptedCall):
    """A web call: aiortc, Phase 1 with the (publishable) key, Phase 2 to `worker_url`, a data channel."""

    def __init__(self, index: int, speech: SpeechCache, script: tuple[Turn, ...], *,
                 host_addresses: tuple[str, ...] = (), ice_servers: tuple = (), echo: bool = False,
                 max_turns: int | None = None, on_progress: Callable[[str], None] | None = None) -> None:
        super().__init__(index, speech, script, echo=echo, max_turns=max_turns, on_progress=on_progress)
        self.host_addresses = host_addresses
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.mic = ScriptedMic()
        # Time agent audio as it arrives, not after aiortc's fixed 80 ms playout buffer (a browser's
        # adaptive one shrinks on a clean path): first audio and audio stopping after a barge-in are
        # the server's doing, and a playout policy of the caller's own would only add a constant.
        use_immediate_audio_buffer(self.pc.addTransceiver(self.mic, direction="sendrecv").receiver)
        self.channel = self.pc.createDataChannel("talkwire")
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._opened = asyncio.Event()
        self.channel.on("open", self._opened.set)

    def play(self, samples: np.ndarray) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        return self.mic.play(samples)

    async def _connect(self, http: httpx.AsyncClient, base_url: str, agent_id: str, key: str) -> None:
        response = await http.post(f"{base_url.rstrip('/')}/calls/create", json={"agent_id": agent_id, "type": "web"},
                                   headers={"X-API-Key": key})
        body = _json(response)
        if response.status_code != 200:
            raise CallFailed(f"Phase 1 (POST /calls/create): HTTP {response.status_code} {body}")
        self.result.call_id = body.get("call_id")
        offer = await self.pc.createOffer()
        restrict_host_addresses(self.pc, list(self.host_addresses))
        await self.pc.setLocalDescription(offer)
        response = await http.post(body["worker_url"], json={"sdp": self.pc.localDescription.sdp, "type": "offer"})
        answer = _json(response)
        if response.status_code != 200:
            raise CallFailed(f"Phase 2 (offer to worker_url): HTTP {response.status_code} {answer}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await self._opened.wait()
        await self._first_packet.wait()

    # ---- what was heard ---------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            task = asyncio.get_running_loop().create_task(self._hear(track), name="loadtest-hear")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hear(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                self._heard((await track.recv()).to_ndarray())

    # ---- data channel -----------------------------------------------------------------------------

    def _on_message(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "agent_state":
            self.agent_state = message.get("state")
        elif kind == "transcription" and message.get("role") == "user" and message.get("is_final"):
            self.result.transcripts.append(str(message.get("text", "")))
        elif kind == "client_tool_call" and self.channel.readyState == "open":
            call_id = message.get("tool_call_id")
            self.channel.send(json.dumps({"type": "client_tool_ack", "tool_call_id": call_id}))
            if message.get("execution_mode") == "blocking":
                self.channel.send(json.dumps({"type": "client_tool_result", "tool_call_id": call_id,
                                              "result": {"ok": True}}))
            self.result.tool_calls_acked += 1

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.closed.set()

    # ---- ending -----------------------------------------------------------------------------------

    async def _finish_media(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        result = self.result
        with contextlib.suppress(Exception):
            stats = await asyncio.wait_for(self.pc.getStats(), 5)
            for report in stats.values():
                if getattr(report, "type", None) == "inbound-rtp":
                    result.packets_received = int(report.packetsReceived)
                    result.packets_lost = max(0, int(report.packetsLost))
        self.mic.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 10)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _first_index_after(times: list[float], after: float) -> int:
    return bisect.bisect_right(times, after)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text

