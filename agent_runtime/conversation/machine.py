"""The conversation's state machine: one event loop that decides what each event means.

    leg frames ─► hearing (VAD, turn detector, STT) ─► SpeechStart / SpeechEnd / Transcript ... ─┐
    leg.events ─► Message (data channel, DTMF) ───────────────────────────────────────────────────┤
    speaking (TTS, play position) ─► AudioStarted / PlaybackDone ──────────────────────────────────┼─► _handle()
    silence timers ─► Silence ─────────────────────────────────────────────────────────────────────┘

States (`State`): listening, user_speaking (internal; the client sees listening), thinking, speaking. Every
change goes through `_set_state`, which sends `agent_state` and the `StateChanged` update when what the
client sees changes. The parts: `hearing.py`, `generation.py` (LLM, tools), `speaking.py` (TTS, playback),
`barge_in.py` and `heard.py` (the cut and what is kept of it), `silence.py`, `dtmf.py`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import agent_runtime.conversation.events as ev
from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.barge_in import barges_in, cut_reply
from agent_runtime.conversation.dtmf import DtmfCollector
from agent_runtime.conversation.generation import Generator
from agent_runtime.conversation.hearing import Hearing
from agent_runtime.conversation.messages import MessageHandler, MessageRouter
from agent_runtime.conversation.reply import Reply, ReplyKind
from agent_runtime.conversation.silence import SilenceTimers
from agent_runtime.conversation.speaking import Speaker
from agent_runtime.conversation.stages import Stages
from agent_runtime.conversation.state import State
from agent_runtime.conversation.tasks import Tasks
from agent_runtime.history import History
from agent_runtime.providers.base import VoiceActivityDetector
from agent_runtime.tools_api import CallContext, ConversationTools
from agent_runtime.updates import (
    ActionRequested,
    Ended,
    ProviderFailure,
    StateChanged,
    ToolActivity,
    TranscriptTurn,
    Update,
    Usage,
)
from media.end_reason import EndReason
from media.frames import AudioFrame
from media.leg import Leg

log = logging.getLogger(__name__)

class Conversation:
    def __init__(
        self,
        leg: Leg,
        config: AgentConfig,
        *,
        tools: ConversationTools | None = None,
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
        self.updates: asyncio.Queue[Update] = asyncio.Queue()
        self._messages = MessageRouter(self.send)
        self.handlers = self._messages.handlers  # data-channel message type -> handler
        # Extra messages for the next LLM request only (e.g. the latest live camera frame), not kept in history.
        self.turn_extras: Callable[[], list[dict[str, Any]]] | None = None
        self.greet = greet
        self._state = State.LISTENING
        self._visible_state: State | None = None
        self._reply: Reply | None = None
        self._react_after_reply = False
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._tasks = Tasks(self._crashed)
        self._end_reason: str | None = None
        self._hang_up = False

        self.stages = Stages(config, self.updates, self.provider_failed, leg_rate=leg.sample_rate)
        self._hearing = Hearing(self)
        self._generator = Generator(self)
        self._speaker = Speaker(self)
        self._silence = SilenceTimers(self.post)
        self._dtmf = DtmfCollector(self.run_soon, self._on_dtmf_entry)
        self._messages.attach_tools(tools)
        self.handlers.setdefault("dtmf", self._dtmf.on_message)

    # ---- public -----------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def vad(self) -> VoiceActivityDetector:
        return self._hearing.vad

    def register_handler(self, message_type: str, handler: MessageHandler) -> None:
        """Handle data-channel messages of `message_type` (sync or async handler taking the dict)."""
        self.handlers[message_type] = handler

    def set_fallback_handler(self, handler: MessageHandler | None) -> None:
        """Handle `client_*` messages whose type has no handler (instead of an UNKNOWN_MESSAGE_TYPE error)."""
        self._messages.fallback = handler

    def add_context(self, message: dict[str, Any]) -> None:
        """Silent context for the LLM (no reply). It joins the history before the next LLM request, never
        between a tool call and its result (OpenAI rejects anything in between)."""
        self._generator.pending_context.append(message)

    @property
    def pending_context(self) -> list[dict[str, Any]]:
        """Context not yet in the history (a continued session carries it over)."""
        return list(self._generator.pending_context)

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
            await self.send({"type": "clearAudio"})
            return True
        await self._cut(reply, cancel_reason=None if audio_only else reason)
        await self._listen(new_stretch=True)
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
        if self._state in (State.USER_SPEAKING, State.THINKING):
            return
        await self._answer()

    def respond_after_reply(self, message: dict[str, Any]) -> None:
        """Answer `message` once the current reply has played: for news that must get a reaction but should
        not cut the agent off."""
        self.add_context(message)
        self._react_after_reply = True

    def run_soon(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn()` on the conversation's event loop, in order with its other events (for work that finished
        in the background, e.g. a media webhook's answer, and now wants `respond`/`add_context`)."""
        self.post(ev.Callback(fn))

    async def send(self, message: dict[str, Any]) -> None:
        """Send a data-channel message to the caller (dropped quietly when the channel is closing)."""
        try:
            await self.leg.send_event(message)
        except Exception as exc:  # the data channel is closing: the call goes on without it
            log.debug("event %s not sent: %s", message.get("type"), exc)

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
        self.post(ev.SwitchAgent(config))

    def record_tool_activity(self, record: dict[str, Any]) -> None:
        """An `on_activity` sink for the tools layer: its records go out on `updates`."""
        self.updates.put_nowait(ToolActivity(record))

    async def run(self) -> str:
        """Run until the call ends; returns the end reason (the leg's, or ours when we hung up)."""
        self._hearing.open_mic_after(self.config.initial_disable_mic_duration)
        self.stages.language.start()
        self._hearing.start()
        self.spawn(self.stages.warm(), "warm")
        self.leg.consume(self._on_inbound)
        self.spawn(self._read_events(), "events")
        self.spawn(self._speaker.watch_playback(), "playback")
        self.leg.ended.add_done_callback(self._on_leg_ended)
        welcome = self.config.welcome_for(self.direction) if self.greet else None
        try:
            if self.leg.ended.done():
                self._end_reason = self.leg.ended.result()
            elif welcome:
                self._start_fixed_reply(ReplyKind.WELCOME, welcome)
            else:
                self._silence.new_stretch(self.config)  # listening from the start: no state change to tell
            while self._end_reason is None:
                await self._handle(await self._events.get())
        finally:
            await self._shutdown()
        return self._end_reason or EndReason.ENDED

    # ---- what the parts use (ConversationHost) ----------------------------------------------------

    @property
    def current_reply(self) -> Reply | None:
        return self._reply

    def post(self, event: ev.Event) -> None:
        self._events.put_nowait(event)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def provider_failed(self, stage: str, error: Exception, provider: str = "", fallback: str | None = None) -> None:
        log.warning("%s provider %s failed%s: %s", stage, provider, f", {fallback} takes over" if fallback else "",
                    error)
        self.updates.put_nowait(ProviderFailure(stage, str(error), provider, fallback))

    def discard_held(self, reply: Reply) -> None:
        """Speech resumed (or the turn ended otherwise): a held reply was never heard, so it leaves no trace."""
        reply.released.set()
        reply.stop_tasks()
        for message in [*reply.messages, reply.user_message]:
            if message is not None:
                self.history.remove(message)

    # ---- the event loop ---------------------------------------------------------------------------

    async def _handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.SpeechStart):
            await self._on_speech_start()
        elif isinstance(event, ev.SpeechEnd):
            await self._on_speech_end(event)
        elif isinstance(event, ev.Partial):
            await self._hearing.show_partial(event)
        elif isinstance(event, ev.Transcript):
            await self._on_transcript(event)
        elif isinstance(event, ev.SpeculationDone):
            self._hearing.speculation_done(event.speculation, self._start_held_reply)
        elif isinstance(event, ev.SttFailed):
            if event.utterance == self._hearing.utterance and self._state is State.THINKING:
                await self._after_failure()  # the failure was reported by the guarded stage
        elif isinstance(event, ev.AudioStarted):
            if event.reply is self._reply and self._state in (State.THINKING, State.LISTENING):
                await self._set_state(State.SPEAKING)
        elif isinstance(event, ev.PlaybackDone):
            if event.reply is self._reply:
                await self._on_playback_done(event.reply)
        elif isinstance(event, ev.Message):
            await self._messages.dispatch(event.message)
        elif isinstance(event, ev.Silence):
            await self._on_silence(event)
        elif isinstance(event, ev.LegEnded):
            self._end_reason = self._end_reason or event.reason
        elif isinstance(event, ev.SwitchAgent):
            await self._on_switch_agent(event.config)
        elif isinstance(event, ev.Callback):
            try:
                await event.fn()
            except Exception:
                log.exception("a scheduled conversation callback failed")

    async def _on_speech_start(self) -> None:
        hearing = self._hearing
        hearing.drop_speculation()
        self._silence.caller_spoke()
        reply = self._reply
        if barges_in(reply):
            await self._cut(reply)
        elif self._state is State.THINKING:
            hearing.speech_resumed_during_stt()
        hearing.speech_started()
        await self._set_state(State.USER_SPEAKING)

    async def _on_speech_end(self, event: ev.SpeechEnd) -> None:
        if self._state is not State.USER_SPEAKING:
            return
        self._hearing.turn_ended(event.audio, event.at)
        await self._set_state(State.THINKING)

    async def _on_transcript(self, event: ev.Transcript) -> None:
        hearing = self._hearing
        if event.held is not None and event.held is hearing.held:
            hearing.held = None
        if event.utterance != hearing.utterance or self._state is not State.THINKING:
            if event.held is not None:
                self.discard_held(event.held)
            return
        text = event.text.strip()
        hearing.transcribed(text)
        if not text:
            await self._listen(new_stretch=True)
            return
        self._react_after_reply = False  # this turn's reply sees what was waiting for a reaction
        if event.held is not None:  # started at the pause on this very transcript: let its audio out
            reply = event.held
            self._reply = reply
            self._time_reply(reply, event)
            self._speaker.release(reply)
            self.updates.put_nowait(TranscriptTurn("user", text))
            await self.send({"type": "transcription", "role": "user", "text": text, "is_final": True})
            return
        self._generator.flush_context()
        self.history.add_user(text)
        reply = self._new_reply(ReplyKind.ANSWER)
        self._time_reply(reply, event)
        self._start_llm_reply(reply)  # before the send: the LLM starts at once
        self.updates.put_nowait(TranscriptTurn("user", text))
        await self.send({"type": "transcription", "role": "user", "text": text, "is_final": True})

    @staticmethod
    def _time_reply(reply: Reply, event: ev.Transcript) -> None:
        reply.speech_end_at, reply.stt_ms = event.speech_end_at, event.stt_ms
        reply.stt_run_ms, reply.stt_speculative = event.stt_run_ms, event.speculative

    def _start_held_reply(self, text: str) -> Reply:
        """A reply on a speculative transcript, its audio and tools held until the turn ends."""
        self._generator.flush_context()
        reply = Reply(ReplyKind.ANSWER, held=True, llm_speculative=True, user_message=self.history.add_user(text))
        reply.speaker = self.spawn(self._speaker.speak(reply), "tts")
        self._start_llm_reply(reply)
        return reply

    async def _on_playback_done(self, reply: Reply) -> None:
        self._reply = None
        reply.drop_empty_messages(self.history)
        text = reply.spoken_text()
        if text:
            await self.send({"type": "transcription", "role": "agent", "text": text, "is_final": True})
            self.updates.put_nowait(TranscriptTurn("agent", text))
        if reply.kind is ReplyKind.ANSWER:
            self.updates.put_nowait(reply.timing(self.stages.served_by(), self.stages.turn_usage()))
        for action in reply.actions:
            self.updates.put_nowait(ActionRequested(action))
        if reply.end_call:
            self._end(EndReason.AGENT_HANGUP, hang_up=True)
            return
        if self._react_after_reply and not reply.actions:
            self._react_after_reply = False
            await self._answer()  # straight from speaking to thinking
            return
        await self._listen(new_stretch=reply.kind is not ReplyKind.ALERT)

    async def _on_dtmf_entry(self, text: str) -> None:
        self.updates.put_nowait(TranscriptTurn("user", text))
        await self.respond({"role": "user", "content": text})

    async def _on_switch_agent(self, config: AgentConfig) -> None:
        self._hearing.drop_speculation()  # a reply started with the old agent's prompt and voice
        if self._reply is not None:
            await self.interrupt("agent_transfer")
        self.spawn(self.stages.aclose(), "close-providers")
        self.config, self.stages = config, self.stages.for_agent(config)
        self._hearing.use_stages()
        self.spawn(self.stages.warm(), "warm")  # the new agent's prompt evaluated while its welcome plays
        welcome = config.welcome_message
        if welcome:
            self._start_fixed_reply(ReplyKind.WELCOME, welcome)
        else:
            await self.respond()

    async def _on_silence(self, event: ev.Silence) -> None:
        if not self._silence.is_current(event):
            return
        reply = self._reply
        if event.hang_up:
            if self._state is State.LISTENING or (reply is not None and reply.kind is ReplyKind.ALERT):
                self._end(EndReason.SILENCE_TIMEOUT, hang_up=True)
            return
        alert = self.config.silence_alert_message
        if self._state is State.LISTENING and alert and self._silence.take_alert():
            self._start_fixed_reply(ReplyKind.ALERT, alert)

    # ---- state ------------------------------------------------------------------------------------

    async def _set_state(self, state: State) -> None:
        """The one way the state changes: the client and the updates hear of what they see changing."""
        self._state = state
        visible = state.visible
        if visible is not self._visible_state:
            self._visible_state = visible
            self.updates.put_nowait(StateChanged(visible.value))
            await self.send({"type": "agent_state", "state": visible.value})

    async def _listen(self, *, new_stretch: bool) -> None:
        """Back to listening; `new_stretch` starts the silence timers afresh (not after the silence alert)."""
        if new_stretch:
            self._silence.new_stretch(self.config)
        await self._set_state(State.LISTENING)

    def _end(self, reason: str, *, hang_up: bool) -> None:
        if self._end_reason is None:
            self._end_reason = reason
            self._hang_up = hang_up

    def _on_leg_ended(self, ended: asyncio.Future[str]) -> None:
        if ended.cancelled():
            reason: str = EndReason.LEG_ENDED
        else:
            reason = ended.result() if ended.exception() is None else EndReason.LEG_FAILED
        self.post(ev.LegEnded(reason))

    # ---- caller audio -----------------------------------------------------------------------------

    def _on_inbound(self, frame: AudioFrame) -> None:
        """The leg's consumer: called in the transport's media tick with each caller frame (the end of the
        stream comes as `leg.ended`). A failure here ends the call, as a failed task would."""
        try:
            self._hearing.feed(frame)
        except Exception:
            log.exception("caller audio processing failed")
            self.leg.consume(None)
            self._crashed()

    async def _read_events(self) -> None:
        while True:
            self.post(ev.Message(await self.leg.events.get()))

    # ---- replies ----------------------------------------------------------------------------------

    def _new_reply(self, kind: ReplyKind) -> Reply:
        reply = Reply(kind)
        self._reply = reply
        reply.speaker = self.spawn(self._speaker.speak(reply), "tts")
        return reply

    def _start_llm_reply(self, reply: Reply) -> None:
        reply.task = self.spawn(self._generator.run(reply), "llm")

    async def _answer(self) -> None:
        """Start an LLM reply on the history as it is (nothing is playing)."""
        self._silence.cancel()
        self._start_llm_reply(self._new_reply(ReplyKind.ANSWER))
        await self._set_state(State.THINKING)

    def _start_fixed_reply(self, kind: ReplyKind, text: str) -> Reply:
        reply = self._new_reply(kind)
        self._generator.fixed(reply, text)
        return reply

    async def _cut(self, reply: Reply, cancel_reason: str | None = "barge_in") -> None:
        self._reply = None
        await cut_reply(self, reply, cancel_reason)

    # ---- failures, tasks, the end -----------------------------------------------------------------

    async def _after_failure(self) -> None:
        """STT failed (its fallback too): the local voice apologises, then the agent listens again."""
        self._hearing.transcribed()
        self._generator.apology(self._new_reply(ReplyKind.ERROR))

    def _crashed(self) -> None:
        self._end(EndReason.INTERNAL_ERROR, hang_up=True)
        self.post(ev.LegEnded(EndReason.INTERNAL_ERROR))

    async def _shutdown(self) -> None:
        self.leg.consume(None)
        self._silence.cancel()
        self._dtmf.close()
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.cancelled = True
        await self._tasks.cancel_all()
        await self._hearing.close()
        await self.stages.aclose()
        self.updates.put_nowait(Usage(self.stages.meter.totals()))
        reason = self._end_reason or EndReason.ENDED
        if self._hang_up and not self.leg.ended.done():
            try:
                await self.leg.hangup(reason)
            except Exception:
                log.exception("hang-up failed")
        self.updates.put_nowait(Ended(reason))
