"""What the conversation's parts (hearing, speaking, generation) may use of the conversation that holds them.

The `Conversation` implements it; a part never reaches further (a test can drive a part with a stand-in).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.events import Event
from agent_runtime.conversation.reply import Reply
from agent_runtime.conversation.stages import Stages
from agent_runtime.conversation.state import State
from agent_runtime.history import History
from agent_runtime.tools_api import CallContext, ConversationTools
from agent_runtime.updates import Update
from media.leg import Leg


class ConversationHost(Protocol):
    leg: Leg
    config: AgentConfig  # the current agent's (agent_transfer replaces it)
    stages: Stages  # its providers as the conversation uses them: guarded, with fallbacks, in the call's language
    history: History
    tools: ConversationTools | None
    context: CallContext
    updates: asyncio.Queue[Update]
    # Extra messages for the next LLM request only (e.g. the latest live camera frame), not kept in history.
    turn_extras: Callable[[], list[dict[str, Any]]] | None

    @property
    def state(self) -> State: ...

    @property
    def current_reply(self) -> Reply | None:
        """The reply the caller hears (or will hear) now; None while listening."""
        ...

    def post(self, event: Event) -> None:
        """Queue an event for the conversation's loop."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a coroutine as one of the conversation's tasks (a failure ends the call)."""
        ...

    async def send(self, message: dict[str, Any]) -> None: ...

    def provider_failed(self, stage: str, error: Exception, provider: str = "", fallback: str | None = None) -> None:
        """Report a provider's failure (an update the session counts by provider)."""
        ...

    def discard_held(self, reply: Reply) -> None:
        """Drop a speculative reply that was never heard, with its history."""
        ...
