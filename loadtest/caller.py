"""One synthetic caller following the script of turns, whatever its transport (web: `web_caller`, SIP: `sip`),
and what it measures. Everything is measured at the caller, so it includes the network, the jitter buffer and
decoding:

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
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

from loadtest.audio import BARGE_SENTENCE, SpeechCache, Turn, noise, words
from loadtest.stats import wer
from loadtest.webrtc_peer import SILENCE_RMS

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
        self._tasks: set[asyncio.Task[None]] = set()

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

    def _heard(self, level: float, arrival: float) -> None:
        """A frame of agent audio arrived at loop time `arrival`; `level` is its RMS."""
        self.times.append(arrival)
        self.loud.append(level >= SILENCE_RMS)
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
            except TimeoutError:
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
        except TimeoutError:
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

    async def _unless_closed(self, script: Coroutine[Any, Any, None]) -> None:
        """Run the script until it ends or the connection drops, whichever is first."""
        task = asyncio.ensure_future(script)
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, closed):
                pending.cancel()
            await asyncio.gather(task, closed, return_exceptions=True)
        error = task.exception() if task.done() and not task.cancelled() else None
        if error is not None:
            raise error

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


def _first_index_after(times: list[float], after: float) -> int:
    return bisect.bisect_right(times, after)
