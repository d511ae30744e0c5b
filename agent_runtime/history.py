"""The conversation's message history in OpenAI Chat Completions form (the system prompt apart).

Assistant messages are live dicts: the conversation edits one in place when barge-in cuts it to what the
caller heard, or drops it when nothing of it was heard. Trimming keeps the newest messages and always
starts the kept part at a user message, so a tool result is never separated from its tool call.
"""
from __future__ import annotations

import json
from typing import Any

from agent_runtime.providers.base import ToolCallRequest


class History:
    def __init__(self, messages: list[dict[str, Any]] | None = None, max_messages: int = 60) -> None:
        self.max_messages = max_messages
        self.items: list[dict[str, Any]] = [dict(m) for m in messages or []]

    def add_user(self, text: str) -> dict[str, Any]:
        return self.add({"role": "user", "content": text})

    def add_assistant(self, text: str = "") -> dict[str, Any]:
        return self.add({"role": "assistant", "content": text})

    def add_tool_call(self, message: dict[str, Any], call: ToolCallRequest) -> None:
        """Attach a tool call to assistant `message` (OpenAI puts text and tool calls in one message)."""
        message.setdefault("tool_calls", []).append({
            "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        })
        if message not in self.items:
            self.add(message)

    def add_tool_result(self, tool_call_id: str, content: str) -> dict[str, Any]:
        return self.add({"role": "tool", "tool_call_id": tool_call_id, "content": content})

    def remove(self, message: dict[str, Any]) -> None:
        self.items = [m for m in self.items if m is not message]

    def messages(self, system_prompt: str | None) -> list[dict[str, Any]]:
        """What to send to the LLM: system prompt, then the history (empty assistant texts as null)."""
        out: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for m in self.items:
            if m["role"] == "assistant" and not m.get("content") and not m.get("tool_calls"):
                continue
            if m["role"] == "assistant" and m.get("tool_calls") and not m.get("content"):
                m = {**m, "content": None}
            out.append(dict(m))
        return out

    def add(self, message: dict[str, Any]) -> dict[str, Any]:
        """Append any ready-made message (e.g. injected context), trimming as the typed adders do."""
        self.items.append(message)
        if len(self.items) > self.max_messages:
            cut = len(self.items) - self.max_messages
            while cut < len(self.items) and self.items[cut]["role"] != "user":
                cut += 1
            if cut < len(self.items):
                self.items = self.items[cut:]
        return message
