"""Tool actions a live call carries out once the agent's words before them have played.

    human_transfer ──► leg.transfer(to_number)        (SIP REFER; a web leg cannot: the agent is told)
    agent_transfer ──► another of the client's agents takes over the same conversation (its prompt, voice,
                       tools and media handlers; the history stays)

`end_call` is the conversation's own. A failed action is written to the timeline (`action_failed`) and the
agent hears why, so it can tell the caller.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent_runtime.client_events import ClientEvents
from agent_runtime.conversation import Conversation
from agent_runtime.tools.executor import ToolExecutor
from control_api.call_agent import build_agent_config
from control_api.call_services import CallServices
from control_api.call_timeline import TimelineWriter
from control_api.storage.agents import load_agent, load_agent_tools, load_media_handlers
from media.leg import Leg, LegCapabilityError, TransferFailed

log = logging.getLogger(__name__)


class CallActions:
    def __init__(self, services: CallServices, client_id: str, leg: Leg, conversation: Conversation,
                 executor: ToolExecutor, client_events: ClientEvents, timeline: TimelineWriter) -> None:
        self.services = services
        self.client_id = client_id
        self.leg = leg
        self.conversation = conversation
        self.executor = executor
        self.client_events = client_events
        self.timeline = timeline

    async def perform(self, action: Mapping[str, Any]) -> None:
        kind = action.get("type")
        if kind == "agent_transfer":
            await self.agent_transfer(str(action.get("agent_id") or ""))
        elif kind == "human_transfer":
            await self.human_transfer(action, str(action.get("to_number") or ""))

    async def human_transfer(self, action: Mapping[str, Any], target: str) -> None:
        try:
            await self.leg.transfer(target)
        except LegCapabilityError as exc:
            await self.failed(action, str(exc))
        except TransferFailed as exc:
            # The caller is still on the line, waiting: the agent says so now, not at their next turn.
            status = f" (SIP {exc.sip_status})" if exc.sip_status else ""
            await self.timeline.event("action_failed", {**action, "message": f"{exc}{status}"})
            conversation = self.conversation
            note = {"role": "system", "content": f"The transfer to {target} did not go through: {exc}. "
                    "Tell the caller and offer another way to help."}
            conversation.run_soon(lambda: conversation.respond(note))
        except Exception as exc:
            log.exception("call %s: transfer to %s failed", self.timeline.call_id, target)
            await self.failed(action, f"transfer failed: {exc}")

    async def agent_transfer(self, agent_id: str) -> None:
        db = self.services.db
        agent = await load_agent(db, self.client_id, agent_id) if agent_id else None
        if agent is None:
            await self.failed({"type": "agent_transfer", "agent_id": agent_id}, "no such agent for this client")
            return
        config = build_agent_config(agent, self.services.providers)
        self.executor.replace_tools(await load_agent_tools(db, agent_id))
        handlers: list[Mapping[str, Any]] = [*await load_media_handlers(db, agent_id)]
        self.client_events.replace_media_handlers(handlers)
        self.conversation.switch_agent(config)
        await self.timeline.event("agent_transferred", {"agent_id": agent_id, "name": agent.get("name")})

    async def failed(self, action: Mapping[str, Any], message: str) -> None:
        await self.timeline.event("action_failed", {**action, "message": message})
        self.conversation.add_context({"role": "system", "content": f"The {action.get('type')} did not happen: "
                                       f"{message}. Tell the user and offer another way."})
