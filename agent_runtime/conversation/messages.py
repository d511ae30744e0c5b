"""Messages from the caller's side (data channel on WebRTC, keypad digits on SIP) routed to their handlers.

A handler is sync or async and takes the message dict. `client_*` types with no handler go to the fallback
handler when one is set; anything else unknown gets an `UNKNOWN_MESSAGE_TYPE` error back, and a handler
that raises gets `INTERNAL_ERROR` (the call goes on).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

TOOL_PROTOCOL_MESSAGES = ("client_tool_ack", "client_tool_result", "client_tool_error")
MessageHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MessageRouter:
    def __init__(self, send: Send) -> None:
        self._send = send
        self.handlers: dict[str, MessageHandler] = {}
        self.fallback: MessageHandler | None = None  # `client_*` types without a handler

    def attach_tools(self, tools: object) -> None:
        """Route the client-tool protocol's messages to the tools layer, when it takes them."""
        handle_client_message = getattr(tools, "handle_client_message", None)
        if handle_client_message is not None:
            for kind in TOOL_PROTOCOL_MESSAGES:
                self.handlers[kind] = handle_client_message

    async def dispatch(self, message: object) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        handler = self.handlers.get(kind) if isinstance(kind, str) else None
        if handler is None and isinstance(kind, str) and kind.startswith("client_"):
            handler = self.fallback
        if handler is None or not isinstance(message, dict):
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
