"""The small protocol between a conversation and the tools layer (`agent_runtime.tools.ToolExecutor`).

The conversation offers the LLM `definitions(channel)`, runs each `ToolCallRequest` through
`execute()`, and on barge-in calls `cancel_pending("barge_in")`. An outcome's `action`
(`{"type": "end_call"}`, transfers) tells the conversation what to do once the agent's words played.
Without a tools object the conversation offers only the built-in `end_call` and runs it itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent_runtime.providers.base import ToolCallRequest


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a tool may want to know about the call it runs in."""

    channel: str  # the leg's tool channel: "voice_web" | "voice_sip"
    direction: str  # "outbound" | "inbound"
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ToolOutcomeLike(Protocol):
    tool_call_id: str
    name: str
    is_error: bool
    action: dict[str, Any] | None

    @property
    def content(self) -> str:
        """The OpenAI `tool` message content."""
        ...


@runtime_checkable
class ConversationTools(Protocol):
    def definitions(self, channel: str | None = None) -> list[dict[str, Any]]:
        """OpenAI function definitions offered on `channel`."""
        ...

    async def execute(self, request: ToolCallRequest, ctx: CallContext | None = None) -> ToolOutcomeLike:
        """Run one tool call; failures are error outcomes, not exceptions."""
        ...

    async def cancel_pending(self, reason: str) -> list[str]:
        """Cancel pending blocking client tools; returns their ids."""
        ...


END_CALL_DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "end_call",
        "description": "End the call when the conversation is finished. Say goodbye first.",
        "parameters": {"type": "object", "properties": {}},
    },
}


@dataclass(slots=True)
class BuiltinOutcome:
    """The outcome of a tool the conversation runs itself (only `end_call`, when no tools object is given)."""

    tool_call_id: str
    name: str
    result: object
    is_error: bool = False
    action: dict[str, Any] | None = None

    @property
    def content(self) -> str:
        return self.result if isinstance(self.result, str) else json.dumps(self.result, ensure_ascii=False)


def run_builtin(request: ToolCallRequest) -> BuiltinOutcome:
    if request.name == "end_call":
        return BuiltinOutcome(request.id, request.name,
                              {"status": "ending", "message": "The call ends once you finish your sentence."},
                              action={"type": "end_call"})
    return BuiltinOutcome(request.id, request.name,
                          {"status": "error", "error": f"There is no tool named {request.name!r}."}, is_error=True)
