"""The agent side of a call: turn-taking, the LLM → TTS pipeline, barge-in, silence handling.

A `Conversation` joins one Leg to one agent. It is a state machine fed by events from one queue:

    leg.inbound ─► VAD ─► TurnDetector ─► SpeechStart / SpeechEnd ─┐
    leg.events  ─► Message ─────────────────────────────────────────┤
    STT / LLM / TTS tasks ─► Transcript, AudioStarted, ... ─────────┼─► _handle() ─► state, replies, leg
    playback watcher (leg.outbound.played_total) ─► PlaybackDone ───┤
    silence timers ─► SilenceAlert / SilenceEnd ────────────────────┘

States: `listening`, `user_speaking` (internal; the client sees `listening`), `thinking`, `speaking`.

Latency choices. The VAD runs at the leg's own rate when it can (WebRTC VAD takes 8/16/32/48 kHz), so no
streaming resampler delays speech detection. The utterance is kept at the leg's rate and resampled to the
STT rate in one call when it ends (about 0.1 ms per second of 8 kHz speech): per-frame streaming
resampling cost more in all, on every frame of every call. A reply is split into sentences while the LLM
streams; a speaker task synthesizes them in order and pushes audio as soon as each chunk exists, so TTS runs
ahead of playback.

Barge-in. Every piece of agent audio is placed on the outbound "play position" axis (played_total +
queued when pushed). When the caller starts speaking over the agent, the queue is cleared, and what was
heard is `played_total` compared with those positions: fully played sentences stay in history, a partly
played one keeps its words in proportion, and the message is marked interrupted ("…").
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent_runtime.agent_config import AgentConfig
from agent_runtime.history import History
from agent_runtime.providers.base import ProviderError, TextDelta, ToolCallRequest
from agent_runtime.sentences import ELLIPSIS, SentenceSplitter, heard_part
from agent_runtime.tools_api import END_CALL_DEFINITION, BuiltinOutcome, CallContext, run_builtin
from agent_runtime.turn_taking import TurnDetector
from agent_runtime.updates import (
    ActionRequested,
    BargeIn,
    Ended,
    ProviderFailure,
    StateChanged,
    ToolActivity,
    TranscriptTurn,
    TurnTiming,
)
from media.frames import AudioFrame, samples_per_frame
from media.leg import Leg
from media.resample import FrameResampler, Reframer, StreamResampler, resample
from media.vad import SUPPORTED_RATES, WebRtcVad

log = logging.getLogger(__name__)

MessageHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
TOOL_PROTOCOL_MESSAGES = ("client_tool_ack", "client_tool_result", "client_tool_error")
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# A reply's first piece may end at a comma after this many words (later ones after 6): the caller waits for
# the first piece's TTS, and a short clause ("I'm sorry for any confusion,") is synthesized sooner.
FIRST_CLAUSE_WORDS = 3
DTMF_GAP_S = 1.5  # keys pressed closer together than this are one entry ("the caller pressed 1 2 3")


# ---- events ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class _SpeechStart:
    at: float


@dataclass(slots=True)
class _SpeechEnd:
    audio: np.ndarray  # at the STT rate
    at: float


@dataclass(slots=True)
class _Partial:
    text: str
    utterance: int


@dataclass(slots=True)
class _Transcript:
    text: str
    utterance: int
    speech_end_at: float
    stt_ms: float  # end of speech decided → this transcript
    stt_run_ms: float | None = None  # the STT call that produced it (queueing included)
    speculative: bool = False  # it was started at the caller's pause, before the end of speech
    held: "_Reply | None" = None  # the reply already started on it, its audio held (see _Speculation)


@dataclass(slots=True)
class _SttFailed:
    error: Exception
    utterance: int


@dataclass(slots=True)
class _Speculation:
    """A final transcription started at the caller's pause, before the turn detector decided the end.

    `samples` is the length of the audio it transcribes: the utterance only grows, so if the turn ends with
    audio of the same length (and the same utterance), it is the very audio the end of turn would hand over.
    The task returns (text or ProviderError, STT call duration in ms).

    When it finishes while the caller is still silent, the reply can start too (`reply`, when the LLM
    allows it): the LLM streams and TTS synthesizes as usual, but no audio reaches the leg and no tool
    runs until the turn really ends; if speech resumes instead, the reply and its history are dropped."""

    utterance: int
    samples: int
    task: asyncio.Task
    reply: "_Reply | None" = None


@dataclass(slots=True)
class _SpeculationDone:
    speculation: _Speculation


@dataclass(slots=True)
class _AudioStarted:
    reply: "_Reply"


@dataclass(slots=True)
class _PlaybackDone:
    reply: "_Reply"


@dataclass(slots=True)
class _Message:
    message: Any


@dataclass(slots=True)
class _Silence:
    stretch: int
    hang_up: bool


@dataclass(slots=True)
class _LegEnded:
    reason: str


@dataclass(slots=True)
class _SwitchAgent:
    config: AgentConfig


@dataclass(slots=True)
class _Callback:
    fn: Callable[[], Awaitable[None]]


# ---- a reply in flight ----------------------------------------------------------------------------

@dataclass(slots=True)
class _Segment:
    """One sentence of agent speech and where its audio sits on the outbound play-position axis."""

    text: str
    message: dict[str, Any] | None
    start: int | None = None
    end: int | None = None
    announced: bool = False


@dataclass
class _Reply:
    kind: str  # "welcome" | "answer" | "alert" | "error"
    speech_end_at: float | None = None
    stt_ms: float | None = None
    stt_run_ms: float | None = None
    stt_speculative: bool | None = None
    llm_speculative: bool = False
    user_message: dict[str, Any] | None = None  # a speculative reply's caller message, dropped with it
    # A speculative reply's audio waits here, with its segment, until the turn ends (see _Speculation).
    held: bool = False
    backlog: list[tuple[_Segment, np.ndarray]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    pieces: asyncio.Queue = field(default_factory=asyncio.Queue)
    segments: list[_Segment] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    open_tool_calls: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    end_call: bool = False
    cancelled: bool = False
    all_queued: bool = False
    done_posted: bool = False
    start_pos: int | None = None
    end_pos: int | None = None
    first_audio_at: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_audio_ms: float | None = None
    task: asyncio.Task | None = None
    speaker: asyncio.Task | None = None

    def __post_init__(self) -> None:
        if not self.held:
            self.released.set()

    def spoken_text(self) -> str:
        return " ".join(s.text for s in self.segments)


class Conversation:
    def __init__(
        self,
        leg: Leg,
        config: AgentConfig,
        *,
        tools: Any = None,
        direction: str = "outbound",
        history: History | list[dict[str, Any]] | None = None,
        greet: bool = True,
    ) -> None:
        """`greet=False` skips the welcome message (a continued session: the caller heard it already)."""
        if direction not in ("outbound", "inbound"):
            raise ValueError("direction is 'outbound' or 'inbound'")
        self.leg = leg
        self.config = config
        self.tools = tools
        self.direction = direction
        self.history = history if isinstance(history, History) else History(history, config.max_history_messages)
        self.context = CallContext(channel=leg.channel, direction=direction)
        self.updates: asyncio.Queue = asyncio.Queue()
        self.state = "listening"
        self.handlers: dict[str, MessageHandler] = {}
        # Handles `client_*` message types no handler is registered for (see set_fallback_handler).
        self.fallback_handler: MessageHandler | None = None
        # Extra messages for the next LLM request only (e.g. the latest live camera frame), not kept in history.
        self.turn_extras: Callable[[], list[dict[str, Any]]] | None = None
        self.greet = greet
        self._pending_context: list[dict[str, Any]] = []
        self._react_after_reply = False
        self._tool_call_ids: set[str] = set()
        if tools is not None and hasattr(tools, "handle_client_message"):
            for kind in TOOL_PROTOCOL_MESSAGES:
                self.handlers[kind] = tools.handle_client_message
        # SIP legs report keypad digits here ({"type": "dtmf", "digits": "5"}, one event per key).
        self.handlers.setdefault("dtmf", self._on_dtmf)
        self._dtmf_digits: list[str] = []
        self._dtmf_timer: asyncio.TimerHandle | None = None

        rate = leg.sample_rate
        self.vad = config.vad or WebRtcVad(sample_rate=rate if rate in SUPPORTED_RATES else 16000)
        self._vad_resampler = (None if self.vad.sample_rate == rate
                               else FrameResampler(rate, self.vad.sample_rate, low_latency=True))
        self._reframer = Reframer(samples_per_frame(rate))
        self._detector = TurnDetector(
            endpointing_ms=config.endpointing_ms, preroll_ms=config.preroll_ms,
            start_frames=config.speech_start_frames, start_window=config.speech_start_window,
            max_utterance_ms=config.max_utterance_ms)
        self._last_voiced = False

        self._events: asyncio.Queue = asyncio.Queue()
        self._visible_state: str | None = None
        self._reply: _Reply | None = None
        self._utterance = 0  # id of the caller's current/last utterance
        self._carry: np.ndarray | None = None  # audio of an utterance whose STT a new one interrupted
        self._stt_task: asyncio.Task | None = None
        self._partial_task: asyncio.Task | None = None
        self._speculation: _Speculation | None = None
        self._held: _Reply | None = None  # a speculative reply whose turn ended, until its transcript is handled
        self._last_partial_at = 0.0
        self._stretch = 0  # id of the current silence stretch
        self._silence_timers: list[asyncio.TimerHandle] = []
        self._alerted_stretch = -1
        self._mic_open_at = 0.0
        self._mic_open = config.initial_disable_mic_duration <= 0
        self._watch_wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._end_reason: str | None = None
        self._hang_up = False

    # ---- public -----------------------------------------------------------------------------------

    def register_handler(self, message_type: str, handler: MessageHandler) -> None:
        """Handle data-channel messages of `message_type` (sync or async handler taking the dict)."""
        self.handlers[message_type] = handler

    def set_fallback_handler(self, handler: MessageHandler | None) -> None:
        """Handle `client_*` messages whose type has no handler (instead of an UNKNOWN_MESSAGE_TYPE error)."""
        self.fallback_handler = handler

    def add_context(self, message: dict[str, Any]) -> None:
        """Silent context for the LLM (no reply). It joins the history before the next LLM request, never
        between a tool call and its result (OpenAI rejects anything in between)."""
        self._pending_context.append(message)

    @property
    def pending_context(self) -> list[dict[str, Any]]:
        """Context not yet in the history (a continued session carries it over)."""
        return list(self._pending_context)

    async def interrupt(self, reason: str, *, audio_only: bool = False) -> bool:
        """Cut the agent's speech now; returns whether there was a reply to cut.

        Full interrupt: like a barge-in (pending blocking client tools get `client_tool_cancel` with `reason`).
        `audio_only`: the audio stops but pending client tools stay open (an upload preset waiting for the file
        must survive the upload's own interrupt); a reply that waits on a tool is only silenced.
        Call it from a data-channel handler (they run on the conversation's loop, in order).
        """
        reply = self._reply
        if reply is None:
            return False
        if audio_only and reply.open_tool_calls:
            self.leg.outbound.clear()
            await self._send({"type": "clearAudio"})
            return True
        await self._barge_in(reply, cancel_reason=None if audio_only else reason)
        self._enter_listening(new_stretch=True)
        await self._set_state("listening")
        return True

    async def respond(self, message: dict[str, Any] | None = None) -> None:
        """Answer now: add `message` (if any) to the history and start an LLM reply, cutting the current one.

        For client action triggers and media that asks for a reaction. While the caller is talking the message
        only joins the history: their turn's reply will see it.
        """
        if self._reply is not None:
            await self.interrupt("new_action")
        if message is not None:
            self.add_context(message)
        if self.state in ("user_speaking", "thinking"):
            return
        self._cancel_silence_timers()
        reply = self._new_reply("answer")
        reply.task = self._spawn(self._run_llm_reply(reply), "llm")
        await self._set_state("thinking")

    def respond_after_reply(self, message: dict[str, Any]) -> None:
        """Answer `message` once the current reply has played: for news that must get a reaction but should
        not cut the agent off."""
        self.add_context(message)
        self._react_after_reply = True

    def run_soon(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn()` on the conversation's event loop, in order with its other events (for work that finished
        in the background, e.g. a media webhook's answer, and now wants `respond`/`add_context`)."""
        self._post(_Callback(fn))

    async def send(self, message: dict[str, Any]) -> None:
        """Send a data-channel message to the caller (dropped quietly when the channel is closing)."""
        await self._send(message)

    @property
    def waiting_on_tool(self) -> bool:
        """The current reply waits for a tool's result (the LLM continues once it arrives)."""
        return self._reply is not None and bool(self._reply.open_tool_calls)

    @property
    def replying(self) -> bool:
        return self._reply is not None

    def switch_agent(self, config: AgentConfig) -> None:
        """agent_transfer: go on with another agent's prompt, voice and settings, history kept. The new agent
        speaks its welcome message (or answers from the history when it has none)."""
        self._post(_SwitchAgent(config))

    def record_tool_activity(self, record: dict[str, Any]) -> None:
        """An `on_activity` sink for the tools layer: its records go out on `updates`."""
        self.updates.put_nowait(ToolActivity(record))

    async def run(self) -> str:
        """Run until the call ends; returns the end reason (the leg's, or ours when we hung up)."""
        loop = asyncio.get_running_loop()
        self._mic_open_at = loop.time() + self.config.initial_disable_mic_duration / 1000
        self.leg.consume(self._on_inbound)
        self._spawn(self._read_events(), "events")
        self._spawn(self._watch_playback(), "playback")
        self.leg.ended.add_done_callback(self._on_leg_ended)
        welcome = self.config.welcome_for(self.direction) if self.greet else None
        try:
            if self.leg.ended.done():
                self._end_reason = self.leg.ended.result()
            elif welcome:
                self._start_fixed_reply("welcome", welcome)
            else:
                self._enter_listening(new_stretch=True)
            while self._end_reason is None:
                await self._handle(await self._events.get())
        finally:
            await self._shutdown()
        return self._end_reason or "ended"

    # ---- event loop -------------------------------------------------------------------------------

    def _post(self, event: Any) -> None:
        self._events.put_nowait(event)

    async def _handle(self, event: Any) -> None:
        if isinstance(event, _SpeechStart):
            await self._on_speech_start()
        elif isinstance(event, _SpeechEnd):
            await self._on_speech_end(event)
        elif isinstance(event, _Partial):
            if self.state == "user_speaking" and event.utterance == self._utterance and event.text:
                await self._send({"type": "transcription", "role": "user", "text": event.text, "is_final": False})
        elif isinstance(event, _Transcript):
            await self._on_transcript(event)
        elif isinstance(event, _SpeculationDone):
            self._on_speculation_done(event.speculation)
        elif isinstance(event, _SttFailed):
            if event.utterance == self._utterance and self.state == "thinking":
                self._provider_failed("stt", event.error)
                await self._after_failure()
        elif isinstance(event, _AudioStarted):
            if event.reply is self._reply and self.state in ("thinking", "listening"):
                await self._set_state("speaking")
        elif isinstance(event, _PlaybackDone):
            if event.reply is self._reply:
                await self._on_playback_done(event.reply)
        elif isinstance(event, _Message):
            await self._on_message(event.message)
        elif isinstance(event, _Silence):
            await self._on_silence(event)
        elif isinstance(event, _LegEnded):
            self._end_reason = self._end_reason or event.reason
        elif isinstance(event, _SwitchAgent):
            await self._on_switch_agent(event.config)
        elif isinstance(event, _Callback):
            try:
                await event.fn()
            except Exception:
                log.exception("a scheduled conversation callback failed")

    async def _on_speech_start(self) -> None:
        self._drop_speculation()
        self._stretch += 1
        self._cancel_silence_timers()
        reply = self._reply
        if reply is not None:
            await self._barge_in(reply)
        elif self.state == "thinking" and self._stt_task is not None:
            # The caller went on talking while their last utterance was being transcribed: keep that
            # audio and transcribe it together with what comes now.
            self._stt_task.cancel()
            self._stt_task = None
            if self._held is not None:
                self._discard_held(self._held)
                self._held = None
        self._utterance += 1
        await self._set_state("user_speaking")

    async def _on_speech_end(self, event: _SpeechEnd) -> None:
        if self.state != "user_speaking":
            return
        audio = event.audio
        if self._carry is not None:
            audio = np.concatenate((self._carry, audio))
        self._carry = audio
        if self._partial_task is not None:
            self._partial_task.cancel()
            self._partial_task = None
        speculation, self._speculation = self._speculation, None
        if (speculation is not None and speculation.utterance == self._utterance
                and speculation.samples == len(audio) and not speculation.task.cancelled()):
            self._held = speculation.reply  # set now or never: a later speculation result is not this one's
            self._stt_task = self._spawn(
                self._finish_speculation(speculation, self._utterance, event.at), "stt")
        else:
            if speculation is not None:
                self._speculation = speculation
                self._drop_speculation()
            self._stt_task = self._spawn(self._transcribe(audio, self._utterance, event.at), "stt")
        await self._set_state("thinking")

    async def _on_transcript(self, event: _Transcript) -> None:
        if event.held is not None and event.held is self._held:
            self._held = None
        if event.utterance != self._utterance or self.state != "thinking":
            if event.held is not None:
                self._discard_held(event.held)
            return
        self._stt_task = None
        self._carry = None
        text = event.text.strip()
        if not text:
            self._enter_listening(new_stretch=True)
            await self._set_state("listening")
            return
        self._react_after_reply = False  # this turn's reply sees what was waiting for a reaction
        if event.held is not None:  # started at the pause on this very transcript: let its audio out
            reply = event.held
            self._reply = reply
            reply.speech_end_at, reply.stt_ms = event.speech_end_at, event.stt_ms
            reply.stt_run_ms, reply.stt_speculative = event.stt_run_ms, event.speculative
            self._release(reply)
            self.updates.put_nowait(TranscriptTurn("user", text))
            await self._send({"type": "transcription", "role": "user", "text": text, "is_final": True})
            return
        self._flush_context()
        self.history.add_user(text)
        reply = self._new_reply("answer")
        reply.speech_end_at, reply.stt_ms = event.speech_end_at, event.stt_ms
        reply.stt_run_ms, reply.stt_speculative = event.stt_run_ms, event.speculative
        reply.task = self._spawn(self._run_llm_reply(reply), "llm")  # before the send: the LLM starts at once
        self.updates.put_nowait(TranscriptTurn("user", text))
        await self._send({"type": "transcription", "role": "user", "text": text, "is_final": True})

    async def _on_playback_done(self, reply: _Reply) -> None:
        self._reply = None
        for message in reply.messages:
            if not message.get("content") and not message.get("tool_calls"):
                self.history.remove(message)
        text = reply.spoken_text()
        if text:
            await self._send({"type": "transcription", "role": "agent", "text": text, "is_final": True})
            self.updates.put_nowait(TranscriptTurn("agent", text))
        if reply.kind == "answer":
            self.updates.put_nowait(TurnTiming(
                stt_ms=reply.stt_ms, stt_run_ms=reply.stt_run_ms, stt_speculative=reply.stt_speculative,
                llm_speculative=reply.llm_speculative,
                llm_first_token_ms=reply.llm_first_token_ms,
                tts_first_audio_ms=reply.tts_first_audio_ms,
                response_ms=None if reply.first_audio_at is None or reply.speech_end_at is None
                else (reply.first_audio_at - reply.speech_end_at) * 1000))
        for action in reply.actions:
            self.updates.put_nowait(ActionRequested(action))
        if reply.end_call:
            self._end("agent_hangup", hang_up=True)
            return
        if self._react_after_reply and not reply.actions:
            self._react_after_reply = False
            self.state = "listening"
            await self.respond()
            return
        self._enter_listening(new_stretch=reply.kind != "alert")
        await self._set_state("listening")

    async def _on_message(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None and isinstance(kind, str) and kind.startswith("client_"):
            handler = self.fallback_handler
        if handler is None:
            shown = kind if isinstance(kind, str) else None
            await self._send({"type": "error", "code": "UNKNOWN_MESSAGE_TYPE",
                              "message": f"unknown message type {shown!r}" if shown
                              else "a message needs a string 'type' field"})
            return
        try:
            result = handler(message)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("data-channel handler for %r failed", kind)
            await self._send({"type": "error", "code": "INTERNAL_ERROR",
                              "message": f"the server could not handle a {kind!r} message"})

    def _on_dtmf(self, message: dict[str, Any]) -> None:
        """Collect keypad digits; once the caller pauses for DTMF_GAP_S, the agent hears them as one turn."""
        digits = [d for d in str(message.get("digits") or "").upper() if d in DTMF_DIGITS]
        if not digits:
            return
        self._dtmf_digits.extend(digits)
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
        self._dtmf_timer = asyncio.get_running_loop().call_later(DTMF_GAP_S, self.run_soon, self._on_dtmf_done)

    async def _on_dtmf_done(self) -> None:
        self._dtmf_timer = None
        digits, self._dtmf_digits = self._dtmf_digits, []
        text = "The caller pressed " + " ".join(digits) + "."
        self.updates.put_nowait(TranscriptTurn("user", text))
        await self.respond({"role": "user", "content": text})

    async def _on_switch_agent(self, config: AgentConfig) -> None:
        self._drop_speculation()  # a reply started with the old agent's prompt and voice
        if self._reply is not None:
            await self.interrupt("agent_transfer")
        self.config = config
        welcome = config.welcome_message
        if welcome:
            self._start_fixed_reply("welcome", welcome)
        else:
            await self.respond()

    async def _on_silence(self, event: _Silence) -> None:
        if event.stretch != self._stretch:
            return
        if event.hang_up:
            if self.state == "listening" or (self._reply is not None and self._reply.kind == "alert"):
                self._end("silence_timeout", hang_up=True)
            return
        if self.state == "listening" and self._alerted_stretch != self._stretch and self.config.silence_alert_message:
            self._alerted_stretch = self._stretch
            self._start_fixed_reply("alert", self.config.silence_alert_message)

    # ---- state ------------------------------------------------------------------------------------

    async def _set_state(self, state: str) -> None:
        self.state = state
        visible = "listening" if state == "user_speaking" else state
        if visible != self._visible_state:
            self._visible_state = visible
            self.updates.put_nowait(StateChanged(visible))
            await self._send({"type": "agent_state", "state": visible})

    def _enter_listening(self, *, new_stretch: bool) -> None:
        self.state = "listening"
        if not new_stretch:
            return
        self._stretch += 1
        self._cancel_silence_timers()
        loop = asyncio.get_running_loop()
        alert, end = self.config.call_user_alert_duration, self.config.call_end_duration
        if alert > 0 and self.config.silence_alert_message:
            self._silence_timers.append(loop.call_later(alert / 1000, self._post, _Silence(self._stretch, False)))
        if end > 0:
            self._silence_timers.append(loop.call_later(end / 1000, self._post, _Silence(self._stretch, True)))

    def _cancel_silence_timers(self) -> None:
        for timer in self._silence_timers:
            timer.cancel()
        self._silence_timers.clear()

    def _end(self, reason: str, *, hang_up: bool) -> None:
        if self._end_reason is None:
            self._end_reason = reason
            self._hang_up = hang_up

    def _on_leg_ended(self, ended: asyncio.Future) -> None:
        reason = "leg_ended" if ended.cancelled() else (ended.result() if ended.exception() is None else "leg_failed")
        self._post(_LegEnded(reason))

    # ---- caller audio -----------------------------------------------------------------------------

    def _on_inbound(self, frame: AudioFrame) -> None:
        """The leg's consumer: called in the transport's media tick with each caller frame (the end of the
        stream comes as `leg.ended`). A failure here ends the call, as a failed task would."""
        try:
            for samples in self._reframer.push(frame.samples):
                self._on_frame(samples)
        except Exception:
            log.exception("caller audio processing failed")
            self.leg.consume(None)
            self._end("internal_error", hang_up=True)
            self._post(_LegEnded("internal_error"))

    async def _read_events(self) -> None:
        while True:
            self._post(_Message(await self.leg.events.get()))

    def _on_frame(self, samples: np.ndarray) -> None:
        """One exact 20 ms frame at the leg rate: VAD, turn detection, partials. Microseconds, on the loop."""
        loop = asyncio.get_running_loop()
        if not self._mic_open:
            if loop.time() < self._mic_open_at:
                return
            self._mic_open = True
            self._detector.reset()
        if self._vad_resampler is None:
            voiced = self.vad.is_speech(samples)
        else:
            decisions = [self.vad.is_speech(f.samples) for f in self._vad_resampler.push(samples)]
            voiced = any(decisions) if decisions else self._last_voiced
        self._last_voiced = voiced
        event = self._detector.feed(samples, voiced)
        if event == "start":
            self._last_partial_at = loop.time()
            self._post(_SpeechStart(loop.time()))
        elif event == "end":
            self._post(_SpeechEnd(self._utterance_for_stt(), loop.time()))
        elif self._detector.speaking:
            silent = self._detector.silent_frames
            if silent == 0:
                self._drop_speculation()  # speech resumed: the utterance will be longer
                self._maybe_partial(loop.time())
            elif silent == self._detector.tail_frames:
                self._maybe_speculate()

    def _utterance_for_stt(self) -> np.ndarray:
        """The caller's current (or just ended) utterance at the STT rate."""
        return resample(self._detector.utterance(), self.leg.sample_rate, self.config.stt.sample_rate)

    def _maybe_partial(self, now: float) -> None:
        interval = self.config.partial_interval_ms / 1000
        if (interval <= 0 or not getattr(self.config.stt, "partials", True)
                or now - self._last_partial_at < interval or self._stt_task is not None
                or self._speculation is not None
                or (self._partial_task is not None and not self._partial_task.done())):
            return
        self._last_partial_at = now
        audio = self._utterance_for_stt()
        self._partial_task = self._spawn(self._transcribe_partial(audio, self._utterance), "stt-partial")

    def _maybe_speculate(self) -> None:
        """The caller paused (TAIL_MS of non-speech): start the final transcription of what they said so far.

        A partial still waiting for the STT is cancelled (a final matters more); one already running in a
        provider's thread cannot be stopped and finishes first."""
        if (not self.config.speculative_stt or not getattr(self.config.stt, "speculative", False)
                or self.state != "user_speaking" or self._speculation is not None):
            return
        if self._partial_task is not None and not self._partial_task.done():
            self._partial_task.cancel()
            self._partial_task = None
        audio = self._utterance_for_stt()
        if self._carry is not None:
            audio = np.concatenate((self._carry, audio))
        speculation = _Speculation(self._utterance, len(audio), self._spawn(self._run_stt(audio), "stt-speculative"))
        self._speculation = speculation
        speculation.task.add_done_callback(lambda task: task.cancelled() or self._post(_SpeculationDone(speculation)))

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.task.cancel()
            if speculation.reply is not None:
                self._discard_held(speculation.reply)

    def _on_speculation_done(self, speculation: _Speculation) -> None:
        """The speculative transcript is there and the caller is still silent: start the reply on it, held."""
        if (speculation is not self._speculation or self.state != "user_speaking" or speculation.reply is not None
                or not self.config.speculative_reply or not getattr(self.config.llm, "speculative", False)):
            return
        text, _run_ms = speculation.task.result()
        if isinstance(text, ProviderError) or not text.strip():
            return
        self._flush_context()
        reply = _Reply("answer", held=True, llm_speculative=True, user_message=self.history.add_user(text.strip()))
        reply.speaker = self._spawn(self._speak(reply), "tts")
        reply.task = self._spawn(self._run_llm_reply(reply), "llm")
        speculation.reply = reply

    def _release(self, reply: _Reply) -> None:
        """The turn ended as speculated: the held reply's audio goes out, in order, and it goes on as usual."""
        reply.held = False
        backlog, reply.backlog = reply.backlog, []
        for segment, samples in backlog:
            self._push(reply, segment, samples)
        reply.released.set()

    def _discard_held(self, reply: _Reply) -> None:
        """Speech resumed (or the turn ended otherwise): a held reply was never heard, so it leaves no trace."""
        reply.cancelled = True
        reply.released.set()
        for task in (reply.task, reply.speaker):
            if task is not None:
                task.cancel()
        for message in [*reply.messages, reply.user_message]:
            if message is not None:
                self.history.remove(message)

    async def _run_stt(self, audio: np.ndarray) -> tuple[str | ProviderError, float]:
        """One final transcription: (text, or the provider's error; how long the call took in ms)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            text: str | ProviderError = await self.config.stt.transcribe(audio, final=True)
        except ProviderError as exc:
            text = exc
        return text, (loop.time() - started) * 1000

    async def _finish_speculation(self, speculation: _Speculation, utterance: int, speech_end_at: float) -> None:
        """The turn ended on the audio the speculation transcribes: its result is the final transcript."""
        loop = asyncio.get_running_loop()
        text, run_ms = await speculation.task
        if isinstance(text, ProviderError):  # the same audio as a final: the same failure as a final's
            self._post(_SttFailed(text, utterance))
            return
        self._post(_Transcript(text, utterance, speech_end_at, (loop.time() - speech_end_at) * 1000, run_ms,
                               speculative=True, held=speculation.reply))

    async def _transcribe_partial(self, audio: np.ndarray, utterance: int) -> None:
        try:
            text = await self.config.stt.transcribe(audio, final=False)
        except ProviderError as exc:
            log.info("partial transcription failed: %s", exc)
            return
        self._post(_Partial(text.strip(), utterance))

    async def _transcribe(self, audio: np.ndarray, utterance: int, speech_end_at: float) -> None:
        loop = asyncio.get_running_loop()
        text, run_ms = await self._run_stt(audio)
        if isinstance(text, ProviderError):
            self._post(_SttFailed(text, utterance))
            return
        self._post(_Transcript(text, utterance, speech_end_at, (loop.time() - speech_end_at) * 1000, run_ms))

    # ---- replies ----------------------------------------------------------------------------------

    def _new_reply(self, kind: str) -> _Reply:
        reply = _Reply(kind)
        self._reply = reply
        reply.speaker = self._spawn(self._speak(reply), "tts")
        return reply

    def _start_fixed_reply(self, kind: str, text: str) -> _Reply:
        reply = self._new_reply(kind)
        message = self.history.add_assistant(text)
        reply.messages.append(message)
        splitter = SentenceSplitter()
        for piece in [*splitter.push(text), splitter.flush()]:
            if piece:
                reply.pieces.put_nowait((piece, message))
        reply.pieces.put_nowait(None)
        return reply

    def _flush_context(self) -> None:
        for message in self._pending_context:
            self.history.add(message)
        self._pending_context.clear()

    def _tool_definitions(self) -> list[dict[str, Any]]:
        if self.tools is None:
            return [END_CALL_DEFINITION]
        return list(self.tools.definitions(self.leg.channel))

    async def _run_llm_reply(self, reply: _Reply) -> None:
        """The LLM loop: stream text into the speaker, run tool calls, call the LLM again (bounded)."""
        loop = asyncio.get_running_loop()
        definitions = self._tool_definitions()
        try:
            for round_no in range(self.config.max_tool_rounds + 1):
                self._flush_context()
                message = self.history.add_assistant("")
                reply.messages.append(message)
                splitter = SentenceSplitter(first_comma_words=FIRST_CLAUSE_WORDS if round_no == 0 else None)
                calls: list[ToolCallRequest] = []
                started = loop.time()
                messages = self.history.messages(self.config.agent_prompt)
                if self.turn_extras is not None:
                    messages += self.turn_extras()
                stream = self.config.llm.stream(
                    messages, tools=definitions or None,
                    temperature=self.config.temperature, top_p=self.config.top_p)
                async with aclosing(stream):
                    async for chunk in stream:
                        if reply.cancelled:
                            return
                        if reply.llm_first_token_ms is None:
                            reply.llm_first_token_ms = (loop.time() - started) * 1000
                        if isinstance(chunk, TextDelta):
                            message["content"] += chunk.text
                            for piece in splitter.push(chunk.text):
                                reply.pieces.put_nowait((piece, message))
                        elif isinstance(chunk, ToolCallRequest):
                            # Ids must be unique in the call (clients match answers and drop repeats by
                            # id); some OpenAI-compatible servers number them per response ("call_0").
                            if not chunk.id or chunk.id in self._tool_call_ids:
                                chunk = ToolCallRequest(f"call_{uuid.uuid4().hex[:16]}", chunk.name,
                                                        chunk.arguments)
                            self._tool_call_ids.add(chunk.id)
                            calls.append(chunk)
                tail = splitter.flush()
                if tail:
                    reply.pieces.put_nowait((tail, message))
                if not calls:
                    return
                if round_no == self.config.max_tool_rounds:
                    log.warning("the LLM still asks for tools after %d rounds; answering without them", round_no)
                    return
                if reply.held:  # no tool runs before the turn really ended (a speculative reply)
                    await reply.released.wait()
                    if reply.cancelled:
                        return
                for call in calls:
                    self.history.add_tool_call(message, call)
                    reply.open_tool_calls.append(call.id)
                for call in calls:
                    outcome = await self._execute(call)
                    if reply.cancelled:
                        return
                    self.history.add_tool_result(call.id, outcome.content)
                    reply.open_tool_calls.remove(call.id)
                    action = getattr(outcome, "action", None)
                    if action and action.get("type") == "end_call":
                        reply.end_call = True
                    elif action:
                        reply.actions.append(action)
                if reply.end_call or reply.actions:
                    return  # the call ends or another party takes over once these words have played
        except ProviderError as exc:
            if reply.cancelled:
                return
            self._provider_failed("llm", exc)
            if self.config.error_message:
                reply.pieces.put_nowait((self.config.error_message, None))
        finally:
            reply.pieces.put_nowait(None)

    async def _execute(self, call: ToolCallRequest) -> Any:
        if self.tools is None:
            return run_builtin(call)
        try:
            return await self.tools.execute(call, self.context)
        except Exception as exc:  # the tools layer reports failures as outcomes; this is a bug there
            log.exception("tool %s raised", call.name)
            return BuiltinOutcome(call.id, call.name, {"status": "error", "error": f"the tool failed: {exc}"},
                                  is_error=True)

    async def _speak(self, reply: _Reply) -> None:
        """Synthesize the reply's pieces in order and queue their audio on the leg as it comes."""
        loop = asyncio.get_running_loop()
        tts = self.config.tts
        while True:
            item = await reply.pieces.get()
            if item is None:
                break
            text, message = item
            segment = _Segment(text, message)
            resampler = StreamResampler(tts.sample_rate, self.leg.sample_rate)
            started = loop.time()
            try:
                audio = tts.synthesize(text, speed=self.config.speed)
                async with aclosing(audio):
                    async for chunk in audio:
                        if reply.cancelled:
                            return
                        if reply.tts_first_audio_ms is None and len(chunk):
                            reply.tts_first_audio_ms = (loop.time() - started) * 1000
                        self._push(reply, segment, resampler.push(np.asarray(chunk, dtype=np.int16)))
                if reply.cancelled:
                    return
                self._push(reply, segment, resampler.flush())
            except ProviderError as exc:
                self._provider_failed("tts", exc)
                if segment.start is None and message is not None:
                    message["content"] = message["content"].replace(text, "", 1).strip()
        await reply.released.wait()  # a held reply's end is placed once its audio went out
        if reply.cancelled:
            return
        reply.all_queued = True
        reply.end_pos = self._play_position()
        self._watch_wakeup.set()

    def _play_position(self) -> int:
        out = self.leg.outbound
        return out.played_total + out.queued_samples

    def _push(self, reply: _Reply, segment: _Segment, samples: np.ndarray) -> None:
        if not len(samples) or reply.cancelled:
            return
        if reply.held:
            reply.backlog.append((segment, samples))
            return
        position = self._play_position()
        if segment.start is None:
            segment.start = position
            reply.segments.append(segment)
            if reply.start_pos is None:
                reply.start_pos = position
            if reply.first_audio_at is None:
                reply.first_audio_at = asyncio.get_running_loop().time()
                self._post(_AudioStarted(reply))
        self.leg.outbound.push(samples)
        segment.end = position + len(samples)
        self._watch_wakeup.set()

    async def _watch_playback(self) -> None:
        """Announce each sentence as it starts playing and post PlaybackDone when a reply has played.

        Sleeps until the next position it waits for should be reached, instead of polling every frame.
        """
        rate = self.leg.sample_rate
        while True:
            reply = self._reply
            played = self.leg.outbound.played_total
            waiting_for: int | None = None
            if reply is not None and not reply.cancelled:
                for segment in reply.segments:
                    if segment.announced or segment.start is None:
                        continue
                    if played > segment.start or (played == segment.start and segment.end == segment.start):
                        segment.announced = True
                        heard = " ".join(s.text for s in reply.segments if s.announced)
                        self._spawn(self._send({"type": "transcription", "role": "agent", "text": heard,
                                                "is_final": False}), "send")
                    else:
                        waiting_for = segment.start + 1
                        break
                if reply.all_queued and reply.end_pos is not None and not reply.done_posted:
                    if played >= reply.end_pos:
                        reply.done_posted = True
                        self._post(_PlaybackDone(reply))
                        continue
                    waiting_for = waiting_for or reply.end_pos
            self._watch_wakeup.clear()
            if waiting_for is None:
                await self._watch_wakeup.wait()
                continue
            delay = min(0.2, max(0.005, (waiting_for - played) / rate))
            # A timer sets the same event (asyncio.wait_for in 3.11 can swallow a cancellation).
            timer = asyncio.get_running_loop().call_later(delay, self._watch_wakeup.set)
            try:
                await self._watch_wakeup.wait()
            finally:
                timer.cancel()

    async def _barge_in(self, reply: _Reply, cancel_reason: str | None = "barge_in") -> None:
        """The caller spoke over the agent: silence it at once, then keep only what was heard.

        `cancel_reason`: why pending blocking client tools are cancelled (None: leave them open)."""
        outbound = self.leg.outbound
        played = outbound.played_total
        outbound.clear()
        reply.cancelled = True
        self._reply = None
        await self._send({"type": "clearAudio"})
        if self.tools is not None and cancel_reason is not None:
            try:
                await self.tools.cancel_pending(cancel_reason)
            except Exception:
                log.exception("cancelling pending client tools failed")
        for task in (reply.task, reply.speaker):
            if task is not None:
                task.cancel()
        # Keep in history only what the caller heard.
        by_message: dict[int, list[str]] = {}
        cut = False
        for segment in reply.segments:
            if segment.start is None or segment.end is None or played <= segment.start:
                cut = True
                continue
            fraction = (played - segment.start) / max(1, segment.end - segment.start)
            if fraction < 1.0:
                cut = True
            if segment.message is not None:
                by_message.setdefault(id(segment.message), []).append(heard_part(segment.text, fraction))
        cut = cut or not reply.all_queued
        for message in reply.messages:
            heard = " ".join(t for t in by_message.get(id(message), []) if t)
            if heard:
                message["content"] = heard + ELLIPSIS if cut else heard
            elif message.get("tool_calls"):
                message["content"] = ""
            else:
                self.history.remove(message)
        for tool_call_id in reply.open_tool_calls:
            self.history.add_tool_result(tool_call_id, '{"status": "interrupted", "reason": "barge_in"}')
        heard_all = " ".join(t for texts in by_message.values() for t in texts if t)
        played_ms = int((played - reply.start_pos) * 1000 / self.leg.sample_rate) if reply.start_pos is not None else 0
        self.updates.put_nowait(BargeIn(max(0, played_ms)))
        if heard_all:
            text = heard_all + ELLIPSIS
            await self._send({"type": "transcription", "role": "agent", "text": text, "is_final": True,
                              "interrupted": True})
            self.updates.put_nowait(TranscriptTurn("agent", text, interrupted=True))

    # ---- failures, sending, tasks -----------------------------------------------------------------

    def _provider_failed(self, stage: str, error: Exception) -> None:
        log.warning("%s provider failed: %s", stage, error)
        self.updates.put_nowait(ProviderFailure(stage, str(error)))

    async def _after_failure(self) -> None:
        """STT failed: apologise if there is something to say it with, else listen again."""
        self._stt_task = None
        self._carry = None
        if self.config.error_message:
            self._start_fixed_reply("error", self.config.error_message)
        else:
            self._enter_listening(new_stretch=True)
            await self._set_state("listening")

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self.leg.send_event(message)
        except Exception as exc:  # the data channel is closing: the call goes on without it
            log.debug("event %s not sent: %s", message.get("type"), exc)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"conversation-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("conversation task %s failed", task.get_name(), exc_info=task.exception())
            self._end("internal_error", hang_up=True)
            self._post(_LegEnded("internal_error"))

    async def _shutdown(self) -> None:
        self.leg.consume(None)
        self._cancel_silence_timers()
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.cancelled = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        reason = self._end_reason or "ended"
        if self._hang_up and not self.leg.ended.done():
            try:
                await self.leg.hangup(reason)
            except Exception:
                log.exception("hang-up failed")
        self.updates.put_nowait(Ended(reason))
