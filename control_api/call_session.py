"""One live call: a leg joined to a conversation, with its recording and its record in the database.

    leg (WebRTC or SIP) ──► Conversation(agent config, tools) ──► updates ──► call record (timeline, status)
                     └──► CallRecorder (stereo WAV in <data_dir>/recordings/)

The session is transport-agnostic: the WebRTC offer endpoint and the SIP dialer both build a leg and hand it
here. It owns nothing the conversation does; it only wires and persists.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from agent_runtime.agent_config import AgentConfig
from agent_runtime.client_events import ClientEvents, MediaFile
from agent_runtime.conversation import Conversation
from agent_runtime.history import History
from agent_runtime.providers.base import ProviderRegistry
from agent_runtime.tools.executor import ToolExecutor
from agent_runtime.updates import (
    ActionRequested,
    BargeIn,
    Ended,
    ProviderFailure,
    ToolActivity,
    TranscriptTurn,
    TurnTiming,
    Update,
)
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.models import Agent, AgentTool, MediaHandler, Tool
from media.leg import Leg, LegCapabilityError
from media.recording import CallRecorder
from signalling.sip import TransferFailed

if TYPE_CHECKING:
    from control_api.runtime import Runtime

log = logging.getLogger(__name__)

RECORDING_RATE = 16000  # recordings are at most this rate (SIP legs record at their 8 kHz)
CONNECT_TIMEOUT = 30.0
# End reasons that mean the call itself failed rather than ended normally.
FAILED_REASONS = frozenset({"connect_timeout", "network_error", "error"})
MAX_CONTINUATION_HOPS = 20  # how far back a chain of continued web sessions is followed


def row_dict(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


async def load_agent(db: Database, client_id: str, agent_id: str) -> dict[str, Any] | None:
    async with db.session() as session:
        agent = await session.get(Agent, agent_id)
        if agent is None or agent.client_id != client_id:
            return None
        return row_dict(agent)


async def load_agent_tools(db: Database, agent_id: str) -> list[dict[str, Any]]:
    """The agent's attached tools as plain dicts; a detached/inactive attachment has `is_active: False`."""
    query = select(Tool, AgentTool.is_active).join(AgentTool, AgentTool.tool_id == Tool.id).where(
        AgentTool.agent_id == agent_id)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [{**row_dict(tool), "is_active": active} for tool, active in rows]


async def load_media_handlers(db: Database, agent_id: str) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = (await session.scalars(select(MediaHandler).where(MediaHandler.agent_id == agent_id))).all()
    return [row_dict(row) for row in rows]


async def history_from_timeline(db: Database, call_id: str) -> list[dict[str, Any]]:
    """The conversation of an ended web session (and the sessions it continued), rebuilt from the timeline:
    transcript turns as user/assistant messages, client context and events as system messages, in order."""
    chain: list[str] = []
    current: str | None = call_id
    while current and current not in chain and len(chain) < MAX_CONTINUATION_HOPS:
        chain.append(current)
        call = await call_store.get_call(db, current)
        current = call.continues_call_id if call is not None else None
    messages: list[dict[str, Any]] = []
    for earlier in reversed(chain):
        for event in await call_store.list_events(db, earlier):
            data = event.payload or {}
            if event.kind == "transcript" and data.get("text"):
                role = "assistant" if data.get("role") == "agent" else "user"
                messages.append({"role": role, "content": str(data["text"])})
            elif event.kind == "client" and isinstance(data.get("message"), dict):
                messages.append(dict(data["message"]))
    return messages


async def merge_extra_details(db: Database, call_id: str, details: Mapping[str, Any]) -> None:
    """Add to a call's extra_details. Written before the final status, so a reader that sees the call
    finished also sees its details (finish_call's own merge comes after the status change)."""
    call = await call_store.get_call(db, call_id)
    if call is not None:
        await call_store.update_call(db, call_id, extra_details={**(call.extra_details or {}), **details})


def build_agent_config(agent: Mapping[str, Any], providers: ProviderRegistry) -> AgentConfig:
    """The conversation's config: the agent's seed fields plus provider instances for its choices."""
    def choice(field: str, name_key: str) -> tuple[str | None, str | None]:
        value = agent.get(field) or {}
        return value.get("provider"), value.get(name_key)

    def create(kind: str, provider: str | None, name: str | None) -> Any:
        if provider and name and providers.has(kind, provider, name):
            return providers.create(kind, provider, name)
        if provider or name:
            log.warning("agent %s: %s %s/%s is not configured here; using the default",
                        agent.get("id"), kind, provider, name)
        return providers.create(kind)

    return AgentConfig.from_agent(
        agent,
        stt=create("stt", *choice("transcription", "model")),
        llm=create("llm", *choice("model", "model")),
        tts=create("tts", *choice("voice", "name")),
    )


@dataclass(frozen=True, slots=True)
class ClientEventRecord:
    """A client event (context, action, media, …) for the call timeline, in order with the other updates."""

    kind: str
    data: dict[str, Any]


class CallSession:
    def __init__(self, runtime: "Runtime", call_id: str, client_id: str, leg: Leg, *,
                 direction: str = "outbound", ready: Awaitable[Any] | None = None,
                 ready_timeout: float = CONNECT_TIMEOUT,
                 details: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        """`direction` is the conversation's ("inbound" only for phone calls to our numbers: it picks the
        inbound welcome message). `ready` resolves once media can flow (WebRTC: ICE and DTLS up); the
        conversation starts then, and the call fails with `connect_timeout` if it does not in time.
        `details(end_reason)` gives the transport's `extra_details` stored with the final status (SIP: outcome,
        sip_status, duration)."""
        self.runtime = runtime
        self.call_id = call_id
        self.client_id = client_id
        self.leg = leg
        self.direction = direction
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.details = details
        self.conversation: Conversation | None = None
        self.executor: ToolExecutor | None = None
        self.client_events: ClientEvents | None = None
        self.agent_id: str | None = None
        self._load_handlers = False
        self.task: asyncio.Task | None = None

    @property
    def db(self) -> Database:
        return self.runtime.db

    def start(self, agent: Mapping[str, Any], tools: list[dict[str, Any]],
              media_handlers: list[dict[str, Any]] | None = None) -> None:
        """Build the conversation and run the call in the background (registered in runtime.calls).

        `media_handlers` default to the agent's, loaded when the call starts."""
        self._load_handlers = media_handlers is None
        self.agent_id = agent.get("id")
        settings = self.runtime.settings
        config = build_agent_config(agent, self.runtime.providers)
        executor = ToolExecutor(
            tools,
            channel=self.leg.channel,
            send_event=self.leg.send_event,
            allow_private_webhooks=settings.allow_private_webhooks,
            webhook_timeout=settings.webhook_timeout,
            on_activity=lambda record: self.conversation.record_tool_activity(record),
            # Phone legs press keys (built-in send_dtmf tool); legs without a keypad keep the base method.
            send_dtmf=self.leg.send_dtmf if type(self.leg).send_dtmf is not Leg.send_dtmf else None,
        )
        self.executor = executor
        self.conversation = Conversation(self.leg, config, tools=executor, direction=self.direction)
        self.client_events = ClientEvents(
            session_id=self.call_id,
            media_handlers=media_handlers,
            load_media=self._load_media,
            on_record=self._record_client_event,
            allow_private_webhooks=settings.allow_private_webhooks,
            webhook_timeout=settings.webhook_timeout,
        )
        self.client_events.install(self.conversation)
        self.runtime.calls[self.call_id] = self
        self.task = asyncio.get_running_loop().create_task(self._run(executor), name=f"call:{self.call_id}")

    async def _run(self, executor: ToolExecutor) -> None:
        recordings = self.runtime.settings.data_dir / "recordings"
        recordings.mkdir(parents=True, exist_ok=True)
        path = recordings / f"{self.call_id}.wav"
        recorder = CallRecorder(path, min(self.leg.sample_rate, RECORDING_RATE))
        self.leg.attach_tap(recorder)
        metrics = self.runtime.metrics
        self.leg.outbound.tap = metrics.frame_lag_tap(self.leg.kind, asyncio.get_running_loop(),
                                                      self.leg.outbound.tap)
        metrics.call_started(self.leg.kind)
        await call_store.set_recording(self.db, self.call_id, str(path))
        persist = asyncio.get_running_loop().create_task(self._persist_updates(), name=f"persist:{self.call_id}")
        reason = "error"
        try:
            if self._load_handlers and self.agent_id:
                self.client_events.replace_media_handlers(await load_media_handlers(self.db, self.agent_id))
            await self._continue_session()
            if self.ready is not None:
                await asyncio.wait_for(self.ready, self.ready_timeout)
            reason = await self.conversation.run()
        except asyncio.TimeoutError:
            reason = "connect_timeout"
        except Exception:
            log.exception("call %s: conversation failed", self.call_id)
        finally:
            if not self.leg.ended.done():
                await self.leg.hangup(reason)
            await self.conversation.updates.put(Ended(reason))
            await persist
            await self.client_events.aclose()
            await executor.aclose()
            await recorder.close()
            status = "failed" if reason in FAILED_REASONS else "completed"
            metrics.call_finished(self.leg.kind, status, reason)
            if self.details is not None:
                await merge_extra_details(self.db, self.call_id, self.details(reason))
            await call_store.finish_call(self.db, self.call_id, status=status, end_reason=reason)
            self.runtime.calls.pop(self.call_id, None)

    async def _persist_updates(self) -> None:
        """Write the conversation's updates to the call's timeline, in order, until Ended."""
        updates = self.conversation.updates
        while True:
            update: Update = await updates.get()
            if isinstance(update, Ended):
                return
            try:
                await self._persist(update)
            except Exception:
                log.exception("call %s: could not store %r", self.call_id, update)

    async def _persist(self, update: Update) -> None:
        db, client, call = self.db, self.client_id, self.call_id
        if isinstance(update, TranscriptTurn):
            extra = {"interrupted": True} if update.interrupted else {}
            await call_store.add_transcript_turn(db, client, call, update.role, update.text, **extra)
        elif isinstance(update, ToolActivity):
            await call_store.append_event(db, client, call, "tool", update.record)
        elif isinstance(update, BargeIn):
            await call_store.append_event(db, client, call, "barge_in", {"played_ms": update.played_ms})
        elif isinstance(update, TurnTiming):
            self.runtime.metrics.observe_timing(update)
            await call_store.append_event(db, client, call, "timing", {
                "stt_ms": update.stt_ms, "stt_run_ms": update.stt_run_ms,
                "stt_speculative": update.stt_speculative, "llm_speculative": update.llm_speculative,
                "llm_first_token_ms": update.llm_first_token_ms,
                "tts_first_audio_ms": update.tts_first_audio_ms, "response_ms": update.response_ms})
        elif isinstance(update, ProviderFailure):
            self.runtime.metrics.provider_error(update.stage)
            await call_store.append_event(db, client, call, "provider_error",
                                          {"stage": update.stage, "message": update.message})
        elif isinstance(update, ActionRequested):
            await call_store.append_event(db, client, call, "action", update.action)
            await self._perform(update.action)
        elif isinstance(update, ClientEventRecord):
            await call_store.append_event(db, client, call, "client", {"kind": update.kind, **update.data})


    # ---- session continuity, client events, tool actions ------------------------------------------

    async def _continue_session(self) -> None:
        """A web call created with an earlier call's `call_id` goes on with that conversation: its history
        and not-yet-used context, and no second welcome. A still-live earlier session hands its state over
        and is hung up; an ended one is rebuilt from its timeline."""
        call = await call_store.get_call(self.db, self.call_id)
        previous_id = call.continues_call_id if call is not None else None
        if not previous_id:
            return
        conversation = self.conversation
        live = self.runtime.calls.get(previous_id)
        if live is not None and live.conversation is not None:
            old = live.conversation
            messages = [dict(m) for m in old.history.items] + old.pending_context
            await live.leg.hangup("session_continued")
        else:
            messages = await history_from_timeline(self.db, previous_id)
        conversation.history = History(messages, conversation.config.max_history_messages)
        conversation.greet = not messages
        await call_store.append_event(self.db, self.client_id, self.call_id, "session_continued",
                                      {"continues_call_id": previous_id, "messages": len(messages)})

    async def _load_media(self, media_id: str) -> MediaFile | None:
        """An upload of this call (uploads of other calls are not visible to it)."""
        store = self.runtime.media
        item = await store.get(media_id) if store is not None else None
        if item is None or item.call_id != self.call_id:
            return None
        data = await store.read(item)
        return MediaFile(item.media_id, item.content_type, item.filename, item.size, data)

    def _record_client_event(self, kind: str, data: dict[str, Any]) -> None:
        """Client events join the conversation's updates, so the timeline keeps their order."""
        self.conversation.updates.put_nowait(ClientEventRecord(kind, data))

    async def _perform(self, action: Mapping[str, Any]) -> None:
        """Tool actions, once the agent's words before them have played (end_call is the conversation's)."""
        kind = action.get("type")
        if kind == "agent_transfer":
            await self._agent_transfer(str(action.get("agent_id") or ""))
        elif kind == "human_transfer":
            target = str(action.get("to_number") or "")
            try:
                await self.leg.transfer(target)
            except LegCapabilityError as exc:
                await self._action_failed(action, str(exc))
            except TransferFailed as exc:
                # The caller is still on the line, waiting: the agent says so now, not at their next turn.
                status = f" (SIP {exc.sip_status})" if exc.sip_status else ""
                await call_store.append_event(self.db, self.client_id, self.call_id, "action_failed",
                                              {**action, "message": f"{exc}{status}"})
                conversation = self.conversation
                note = {"role": "system", "content": f"The transfer to {target} did not go through: {exc}. "
                        "Tell the caller and offer another way to help."}
                conversation.run_soon(lambda: conversation.respond(note))
            except Exception as exc:
                log.exception("call %s: transfer to %s failed", self.call_id, target)
                await self._action_failed(action, f"transfer failed: {exc}")

    async def _agent_transfer(self, agent_id: str) -> None:
        agent = await load_agent(self.db, self.client_id, agent_id) if agent_id else None
        if agent is None:
            await self._action_failed({"type": "agent_transfer", "agent_id": agent_id},
                                      "no such agent for this client")
            return
        config = build_agent_config(agent, self.runtime.providers)
        self.executor.replace_tools(await load_agent_tools(self.db, agent_id))
        self.client_events.replace_media_handlers(await load_media_handlers(self.db, agent_id))
        self.agent_id = agent_id
        self.conversation.switch_agent(config)
        await call_store.append_event(self.db, self.client_id, self.call_id, "agent_transferred",
                                      {"agent_id": agent_id, "name": agent.get("name")})

    async def _action_failed(self, action: Mapping[str, Any], message: str) -> None:
        await call_store.append_event(self.db, self.client_id, self.call_id, "action_failed",
                                      {**action, "message": message})
        self.conversation.add_context({"role": "system", "content": f"The {action.get('type')} did not happen: "
                                       f"{message}. Tell the user and offer another way."})
