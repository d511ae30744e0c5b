"""One live call: a leg joined to a conversation, with its recording and its record in the database.

    Call(leg (WebRTC or SIP), Conversation(agent config, tools)) ──► updates ──► TimelineWriter ──► call record
         └──► CallRecorder (stereo WAV in <data_dir>/recordings/)

Web and SIP start a call the same way, `start_call(services, leg, ...)`, once they have a leg and the agent
(the web offer flow in `web_calls`, SIP dispatch in `sip_dispatch`). The session is transport-agnostic and
owns nothing the conversation does; it wires, records and, when the call is over, finishes the record with
the end reason (whose `failed` flag decides the status: `media.end_reason`). Running the conversation on the
leg is `agent_runtime.call.Call`'s, as in the benchmarks and tests.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, cast

from agent_runtime.call import Call
from agent_runtime.client_events import ClientEvents, MediaFile
from agent_runtime.conversation import Conversation
from agent_runtime.history import History
from agent_runtime.tools.executor import ToolExecutor
from agent_runtime.updates import Ended
from control_api.call_actions import CallActions
from control_api.call_agent import AgentRecord, build_agent_config
from control_api.call_services import CallServices
from control_api.call_timeline import (
    ClientEventBudget,
    ClientEventRecord,
    TimelineWriter,
)
from control_api.cluster import wiring as cluster_hooks
from control_api.db_retry import retrying
from control_api.storage import calls as call_store
from control_api.storage.agents import load_agent_tools, load_media_handlers
from media.end_reason import EndReason
from media.leg import Leg
from media.recording import CallRecorder

log = logging.getLogger(__name__)

RECORDING_RATE = 16000  # recordings are at most this rate (SIP legs record at their 8 kHz)
RECORDINGS_DIR = "recordings"  # under the data directory
TIMELINE_FULL = {"type": "error", "code": "OVER_QUOTA",
                 "message": "This call's timeline is full (TALKWIRE_MAX_TIMELINE_ROWS_PER_CALL / "
                            "TALKWIRE_MAX_TIMELINE_BYTES_PER_CALL): the event was not recorded"}
CONNECT_TIMEOUT = 30.0

Direction = Literal["inbound", "outbound"]
Details = Callable[[str], Mapping[str, Any]]  # end reason -> the transport's extra_details


class CallSession:
    def __init__(self, services: CallServices, leg: Leg, *, call_id: str, client_id: str, agent: AgentRecord,
                 tools: list[dict[str, Any]], direction: Direction = "outbound", ready: Awaitable[object] | None = None,
                 ready_timeout: float = CONNECT_TIMEOUT, details: Details | None = None) -> None:
        """Build the call's conversation for `agent` and its attached `tools` (its media handlers are loaded
        when the call starts).

        `direction` is the conversation's ("inbound" only for phone calls to our numbers: it picks the
        inbound welcome message). `ready` resolves once media can flow (WebRTC: ICE and DTLS up); the
        conversation starts then, and the call fails with `connect_timeout` if it does not in time.
        `details(end_reason)` gives the transport's `extra_details` stored with the final status (SIP: outcome,
        sip_status, duration)."""
        self.services = services
        self.call_id = call_id
        self.client_id = client_id
        self.details = details
        self.agent_id = str(agent["id"])
        self.task: asyncio.Task[None] | None = None
        self.end_reason: EndReason | None = None  # why the call ended, once its record is finished
        self._refusals: set[asyncio.Task[None]] = set()  # data-channel error messages being sent
        settings = services.settings
        self.executor = ToolExecutor(
            tools,
            channel=leg.channel,
            send_event=leg.send_event,
            allow_private_webhooks=settings.allow_private_webhooks,
            webhook_timeout=settings.webhook_timeout,
            on_activity=lambda record: self._conversation.record_tool_activity(record),
            # Phone legs press keys (built-in send_dtmf tool); legs without a keypad keep the base method.
            send_dtmf=leg.send_dtmf if type(leg).send_dtmf is not Leg.send_dtmf else None,
            on_guard_refusal=self._guard_refused,
        )
        config = build_agent_config(agent, services.providers)
        self._conversation = Conversation(leg, config, tools=self.executor, direction=direction)
        self.client_events = ClientEvents(
            session_id=call_id,
            load_media=self._load_media,
            on_record=self._record_client_event,
            allow_private_webhooks=settings.allow_private_webhooks,
            webhook_timeout=settings.webhook_timeout,
            on_guard_refusal=self._guard_refused,
        )
        self.client_events.install(self._conversation)
        self.call = Call(leg, self._conversation, ready=ready, ready_timeout=ready_timeout)
        budget = ClientEventBudget(settings.max_timeline_rows_per_call, settings.max_timeline_bytes_per_call)
        self.timeline = TimelineWriter(services.db, services.metrics, client_id, call_id, self._perform, budget)
        self.actions = CallActions(services, client_id, leg, self._conversation, self.executor,
                                   self.client_events, self.timeline)

    @property
    def leg(self) -> Leg:
        return self.call.leg

    @property
    def conversation(self) -> Conversation:
        return self._conversation

    def start(self) -> None:
        """Run the call in the background, registered in the live calls until its record is finished."""
        self.services.calls.add(self.call_id, self)
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"call:{self.call_id}")

    async def finished(self) -> None:
        if self.task is not None:
            await asyncio.wait([self.task])

    async def _run(self) -> None:
        services, leg = self.services, self.leg
        recording = f"{RECORDINGS_DIR}/{self.call_id}.wav"  # stored relative to the data directory
        path = services.settings.data_dir / recording
        path.parent.mkdir(parents=True, exist_ok=True)
        recorder = CallRecorder(path, min(leg.sample_rate, RECORDING_RATE))
        leg.attach_tap(recorder)
        metrics = services.metrics
        leg.outbound.tap = metrics.frame_lag_tap(leg.kind, asyncio.get_running_loop(), leg.outbound.tap)
        metrics.call_started(leg.kind)
        cluster_hooks.call_started(services, self.call_id)
        persist = asyncio.get_running_loop().create_task(self.timeline.run(self.call.updates),
                                                         name=f"persist:{self.call_id}")
        reason: str = EndReason.ERROR
        try:
            await retrying(f"call {self.call_id}: start", lambda: call_store.mark_running(
                services.db, self.call_id, recording=recording, worker=services.worker))
            handlers: list[Mapping[str, Any]] = [*await load_media_handlers(services.db, self.agent_id)]
            self.client_events.replace_media_handlers(handlers)
            await self._continue_session()
            reason = await self.call.run()  # hangs up the leg whatever ends it
        except Exception:
            log.exception("call %s: could not start", self.call_id)
        finally:
            if not leg.ended.done():  # the call never ran
                await leg.hangup(reason)
            await self.call.updates.put(Ended(reason))
            await persist
            await self.client_events.aclose()
            await self.executor.aclose()
            await recorder.close()
            await self._finish(reason)

    async def _finish(self, reason: str) -> None:
        """Finish the record (status by the reason) and leave the live calls."""
        try:
            metrics = self.services.metrics
            metrics.call_finished(self.leg.kind, call_store.final_status(reason), reason)
            for refusal, count in (("bad_message", self.leg.invalid_messages),
                                   ("rate_limited", self.leg.rate_limited_messages)):
                if count:
                    metrics.refused(refusal, count)
            details = self.details(reason) if self.details is not None else None
            await retrying(f"call {self.call_id}: finish", lambda: call_store.finish_call(
                self.services.db, self.call_id, end_reason=reason, extra_details=details))
            if self.services.analysis is not None:  # off the call's path: returns at once
                self.services.analysis.schedule(self.call_id)
        except LookupError:  # the record was deleted meanwhile (its client was)
            log.info("call %s: ended (%s) after its record was deleted", self.call_id, reason)
        except Exception:
            log.exception("call %s: could not finish its record (%s)", self.call_id, reason)
        finally:
            self.end_reason = EndReason.parse(reason) or EndReason.ERROR
            self.services.calls.remove(self.call_id, self)
            cluster_hooks.call_ended(self.services, self.call_id)

    def _guard_refused(self) -> None:
        self.services.metrics.refused("guard_refusal")

    async def _perform(self, action: Mapping[str, Any]) -> None:
        await self.actions.perform(action)

    # ---- session continuity, client events ----------------------------------------------------------

    async def _continue_session(self) -> None:
        """A web call created with an earlier call's `call_id` goes on with that conversation: its history
        and not-yet-used context, and no second welcome. A still-live earlier session hands its state over
        and is hung up; an ended one is rebuilt from its timeline."""
        db = self.services.db
        call = await call_store.get_call(db, self.call_id)
        previous_id = call.continues_call_id if call is not None else None
        if not previous_id:
            return
        conversation = self.conversation
        live = self.services.calls.get(previous_id)
        if live is not None:
            old = live.conversation
            messages = [dict(m) for m in old.history.items] + old.pending_context
            await live.leg.hangup(EndReason.SESSION_CONTINUED)
        else:
            messages = await call_store.history_from_timeline(db, previous_id)
        conversation.history = History(messages, conversation.config.max_history_messages)
        conversation.greet = not messages
        await self.timeline.event("session_continued", {"continues_call_id": previous_id,
                                                        "messages": len(messages)})

    async def _load_media(self, media_id: str) -> MediaFile | None:
        """An upload of this call (uploads of other calls are not visible to it)."""
        store = self.services.media
        item = await store.get(media_id) if store is not None else None
        if store is None or item is None or item.call_id != self.call_id:
            return None
        data = await store.read(item)
        return MediaFile(item.media_id, item.content_type, item.filename, item.size, data)

    def _record_client_event(self, kind: str, data: dict[str, Any]) -> None:
        """Client events join the conversation's updates, so the timeline keeps their order (the queue is the
        conversation's; the timeline writer reads both kinds from it). Past the call's timeline budget nothing
        is written and the caller is told on the data channel."""
        if not self.timeline.budget.admit({"kind": kind, **data}):
            self.services.metrics.refused("over_quota")
            task = asyncio.get_running_loop().create_task(self.leg.send_event(dict(TIMELINE_FULL)))
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)
            return
        cast("asyncio.Queue[object]", self.call.updates).put_nowait(ClientEventRecord(kind, data))


async def start_call(services: CallServices, leg: Leg, *, call_id: str, client_id: str, agent: AgentRecord,
                     direction: Direction, ready: Awaitable[object] | None = None,
                     details: Details | None = None) -> CallSession:
    """The one way a call starts, web or SIP: the agent's tools loaded, the session built and running."""
    tools = await load_agent_tools(services.db, str(agent["id"]))
    session = CallSession(services, leg, call_id=call_id, client_id=client_id, agent=agent, tools=tools,
                          direction=direction, ready=ready, details=details)
    session.start()
    return session
