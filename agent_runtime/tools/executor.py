"""The tools object a call's conversation holds.

    executor = ToolExecutor(agent_tools, channel="voice_web", send_event=leg.send_event,
                            on_activity=timeline.append, allow_private_webhooks=settings.allow_private_webhooks)
    llm tools   = executor.definitions()                 # OpenAI function definitions
    outcome     = await executor.execute(tool_call_request, ctx)   # → ToolOutcome for the LLM
    data channel: executor.handle_client_message(msg)    # client_tool_ack / _result / _error
    barge-in    : await executor.cancel_pending("barge_in")

`agent_tools` are the agent's attached tools as stored (plain dicts, see presets.validation); an
entry with `is_active: false` is skipped. Only tools whose `channels` include the call's channel are
offered to the LLM. Built-ins: `end_call` always (a fire_and_forget client_tool_call tells the page,
then the outcome asks the runner to hang up), `agent_transfer` / `human_transfer` when attached — the
executor does not call their seed webhook URLs; it returns an `action` the call runner performs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent_runtime.providers.base import ToolCallRequest
from agent_runtime.tools.client import (
    DEFAULT_ACK_TIMEOUT_S,
    DEFAULT_RESULT_TIMEOUT_S,
    ActivitySink,
    ClientToolBroker,
    SendEvent,
)
from agent_runtime.tools.definitions import function_name, llm_definition
from agent_runtime.tools.server import DEFAULT_TIMEOUT_S, WebhookCaller
from agent_runtime.tools_api import CallContext
from media.end_reason import EndReason
from presets.catalog import get_preset
from presets.templating import client_arguments, server_request

log = logging.getLogger(__name__)

BUILTINS = ("end_call", "agent_transfer", "human_transfer", "send_dtmf")
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_DTMF_DIGITS = 64
# Offered on phone calls (the executor is given the leg's send_dtmf): keypad tones for IVR menus.
SEND_DTMF_TOOL: dict[str, Any] = {
    "name": "send_dtmf",
    "ref_code": "send_dtmf",
    "description": "Press keys on the phone keypad (DTMF tones), e.g. to choose an option in an automated "
                   "phone menu. Digits 0-9, * and #, sent in order.",
    "type": "client",
    "execution_mode": "blocking",
    "channels": ["voice_telephony"],
    "parameters": [{"name": "digits", "type": "string", "required": True,
                    "description": "The keys to press, e.g. \"1\" or \"1234#\"."}],
}
SendDtmf = Callable[[str], Awaitable[None]]
END_CALL_TOOL: dict[str, Any] = {
    "name": "end_call",
    "ref_code": "end_call",
    "description": "End the call when the conversation is finished.",
    "type": "client",
    "execution_mode": "fire_and_forget",
    "channels": ["voice_web", "voice_telephony"],
    "parameters": [],
}
# The leg contract names its channel "voice_sip"; tools (the seed) say "voice_telephony".
_CHANNEL_ALIASES = {"voice_sip": "voice_telephony", "sip": "voice_telephony", "webrtc": "voice_web"}

OutcomeKind = Literal["client", "server", "builtin", "unknown"]


@dataclass(slots=True)
class ToolOutcome:
    tool_call_id: str
    name: str
    result: Any  # what the LLM reads (dict or text)
    is_error: bool = False
    interrupted: bool = False
    kind: OutcomeKind = "unknown"
    # For the call runner: {"type": "end_call"} | {"type": "agent_transfer", "agent_id": …}
    # | {"type": "human_transfer", "to_number": …}
    action: dict[str, Any] | None = None

    @property
    def content(self) -> str:
        """The OpenAI `tool` message content."""
        if isinstance(self.result, str):
            return self.result
        return json.dumps(self.result, ensure_ascii=False)


def normalize_channel(channel: str) -> str:
    return _CHANNEL_ALIASES.get(channel, channel)


class ToolExecutor:
    def __init__(
        self,
        tools: Iterable[Mapping[str, Any]],
        *,
        channel: str,
        send_event: SendEvent,
        on_activity: ActivitySink | None = None,
        allow_private_webhooks: bool = False,
        webhook_timeout: float = DEFAULT_TIMEOUT_S,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
        webhooks: WebhookCaller | None = None,
        end_call: bool = True,
        send_dtmf: SendDtmf | None = None,
        on_guard_refusal: Callable[[], None] | None = None,
    ) -> None:
        """`send_dtmf`: the phone leg's keypad sender; given, the built-in `send_dtmf` tool is offered.
        `on_guard_refusal`: told of each webhook the address guard refuses."""
        self.channel = normalize_channel(channel)
        self.client = ClientToolBroker(send_event, on_activity=on_activity, ack_timeout=ack_timeout)
        self._owns_webhooks = webhooks is None
        self.webhooks = webhooks or WebhookCaller(allow_private=allow_private_webhooks, timeout=webhook_timeout,
                                                  on_refused=on_guard_refusal)
        self._end_call = end_call
        self._send_dtmf = send_dtmf
        self._background: set[asyncio.Task[Any]] = set()
        self._tools: dict[str, dict[str, Any]] = {}
        self.replace_tools(tools)

    # ---- the conversation's tools protocol ---------------------------------------------------------

    def replace_tools(self, tools: Iterable[Mapping[str, Any]]) -> None:
        """Swap the tool set (agent_transfer to another agent in the same call)."""
        by_name: dict[str, dict[str, Any]] = {}
        for tool in tools:
            if tool.get("is_active") is False:
                continue
            name = function_name(tool)
            if name in by_name:
                log.warning("two attached tools are both called %r; keeping the first", name)
                continue
            by_name[name] = dict(tool)
        if self._end_call and "end_call" not in by_name:
            by_name["end_call"] = dict(END_CALL_TOOL)
        if self._send_dtmf is not None and "send_dtmf" not in by_name:
            by_name["send_dtmf"] = dict(SEND_DTMF_TOOL)
        self._tools = by_name

    def definitions(self, channel: str | None = None) -> list[dict[str, Any]]:
        wanted = normalize_channel(channel) if channel else self.channel
        return [llm_definition(t) for t in self._tools.values() if self._offered(t, wanted)]

    async def execute(self, request: ToolCallRequest, ctx: CallContext | None = None) -> ToolOutcome:
        """Run one LLM tool call. Never raises for tool failures: they are error outcomes.

        `ctx` is the conversation's call context; tools need nothing from it today.
        """
        tool_call_id = request.id or f"call_{uuid.uuid4().hex[:16]}"
        tool = self._tools.get(request.name)
        arguments = request.arguments if isinstance(request.arguments, dict) else {}
        if tool is None:
            return self._error(tool_call_id, request.name, f"There is no tool named {request.name!r}.")
        if request.name in BUILTINS:
            return await self._builtin(tool_call_id, request.name, tool, arguments)
        if not self._offered(tool, self.channel):
            return self._error(tool_call_id, request.name,
                               f"The tool {request.name!r} is not available on this channel ({self.channel}).")
        missing = [p["name"] for p in tool.get("parameters") or []
                   if p.get("required") and arguments.get(p["name"]) in (None, "")]
        if missing:
            return self._error(tool_call_id, request.name,
                               f"Missing required argument(s): {', '.join(missing)}. Ask the user, then call again.")
        if tool.get("type") == "server":
            return await self._server(tool_call_id, request.name, tool, arguments)
        return await self._client(tool_call_id, request.name, tool, arguments)

    async def cancel_pending(self, reason: str) -> list[str]:
        """Cancel every pending blocking client tool (client_tool_cancel each); returns their ids."""
        return await self.client.cancel_pending(reason)

    def handle_client_message(self, message: Mapping[str, Any]) -> bool:
        """Feed a data-channel message; True when it was a client_tool_ack/result/error."""
        return self.client.handle_message(dict(message))

    async def aclose(self) -> None:
        """End of call: cancel what is pending, let fire_and_forget webhooks finish (their own
        deadline bounds it), close the HTTP client."""
        await self.cancel_pending("call_ended")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._owns_webhooks:
            await self.webhooks.aclose()

    # ---- kinds ------------------------------------------------------------------------------------

    async def _client(self, tool_call_id: str, name: str, tool: dict[str, Any],
                      arguments: dict[str, Any]) -> ToolOutcome:
        fields = tool.get("client_fields") or {}
        preset_id = fields.get("preset_id") if isinstance(fields.get("preset_id"), str) else None
        preset = get_preset(preset_id) if preset_id else None
        timeout = tool.get("timeout_seconds") or (preset.result_timeout_s if preset else DEFAULT_RESULT_TIMEOUT_S)
        result = await self.client.call(
            tool_call_id=tool_call_id,
            name=tool.get("name", name),
            arguments=client_arguments(tool, arguments),
            execution_mode=tool.get("execution_mode") or "fire_and_forget",
            preset_id=preset_id,
            result_timeout=float(timeout),
            extra={"ref_code": name},
        )
        return ToolOutcome(tool_call_id, name, result.for_llm(), is_error=result.status in ("error", "timeout"),
                           interrupted=result.status == "interrupted", kind="client")

    async def _server(self, tool_call_id: str, name: str, tool: dict[str, Any],
                      arguments: dict[str, Any]) -> ToolOutcome:
        spec = server_request(tool, arguments)
        self._record(tool_call_id, name, "tool_call", kind="server", arguments=arguments,
                     method=spec["method"], url=spec["url"], execution_mode=tool.get("execution_mode"))
        if tool.get("execution_mode") == "fire_and_forget":
            task = asyncio.get_running_loop().create_task(self._run_webhook(tool_call_id, name, tool, arguments))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return ToolOutcome(tool_call_id, name, {"status": "sent", "message": "ok, the request was sent"},
                               kind="server")
        return await self._run_webhook(tool_call_id, name, tool, arguments)

    async def _run_webhook(self, tool_call_id: str, name: str, tool: dict[str, Any],
                           arguments: dict[str, Any]) -> ToolOutcome:
        result = await self.webhooks.call(tool, arguments)
        self._record(tool_call_id, name, "tool_result" if result.ok else "tool_error", kind="server",
                     status_code=result.status_code, elapsed_ms=result.elapsed_ms, truncated=result.truncated,
                     message=result.error, result=result.body)
        return ToolOutcome(tool_call_id, name, result.for_llm(), is_error=not result.ok, kind="server")

    async def _builtin(self, tool_call_id: str, name: str, tool: dict[str, Any],
                       arguments: dict[str, Any]) -> ToolOutcome:
        if name == "end_call":
            await self.client.call(tool_call_id=tool_call_id, name="end_call", arguments={},
                                   execution_mode="fire_and_forget", extra={"ref_code": "end_call"})
            return ToolOutcome(tool_call_id, name, {"status": "ending",
                               "message": "The call ends once you finish your sentence."},
                               kind="builtin", action={"type": "end_call", "reason": EndReason.AGENT_ENDED_CALL})
        if name == "send_dtmf":
            return await self._dtmf(tool_call_id, arguments)
        if name == "human_transfer" and self.channel != "voice_telephony":
            return self._error(tool_call_id, name, "human_transfer works on phone calls only; this is a "
                               "web call. Offer another way to reach a person instead.", kind="builtin")
        key = "agent_id" if name == "agent_transfer" else "to_number"
        body = server_request(tool, arguments)["body"] if tool.get("type") == "server" else None
        target = (body.get(key) if isinstance(body, dict) else None) or arguments.get(key)
        if not target:
            return self._error(tool_call_id, name, f"{name} needs {key}.", kind="builtin")
        self._record(tool_call_id, name, "tool_call", kind="builtin", arguments=arguments, target=target)
        outcome = {"status": "transferring", key: target}
        return ToolOutcome(tool_call_id, name, outcome, kind="builtin", action={"type": name, key: target})

    async def _dtmf(self, tool_call_id: str, arguments: dict[str, Any]) -> ToolOutcome:
        if self._send_dtmf is None:
            return self._error(tool_call_id, "send_dtmf", "send_dtmf works on phone calls only.", kind="builtin")
        raw = str(arguments.get("digits") or "").replace(" ", "").replace(",", "").upper()
        if not raw or len(raw) > MAX_DTMF_DIGITS or not set(raw) <= DTMF_DIGITS:
            return self._error(tool_call_id, "send_dtmf", "digits: give the keys to press, 0-9, * and # "
                               f"(at most {MAX_DTMF_DIGITS}).", kind="builtin")
        self._record(tool_call_id, "send_dtmf", "tool_call", kind="builtin", arguments={"digits": raw})
        try:
            await self._send_dtmf(raw)
        except Exception as exc:
            log.warning("send_dtmf %r failed: %s", raw, exc)
            return self._error(tool_call_id, "send_dtmf", f"The keys could not be sent: {exc}", kind="builtin")
        self._record(tool_call_id, "send_dtmf", "tool_result", kind="builtin", result={"digits": raw})
        return ToolOutcome(tool_call_id, "send_dtmf", {"status": "sent", "digits": raw}, kind="builtin")

    # ---- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _offered(tool: Mapping[str, Any], channel: str) -> bool:
        channels = tool.get("channels") or ["voice_web", "voice_telephony"]
        return channel in channels

    def _error(self, tool_call_id: str, name: str, message: str, kind: OutcomeKind = "unknown") -> ToolOutcome:
        self._record(tool_call_id, name, "tool_error", kind=kind, message=message)
        return ToolOutcome(tool_call_id, name, {"status": "error", "error": message}, is_error=True, kind=kind)

    def _record(self, tool_call_id: str, name: str, event: str, **data: Any) -> None:
        self.client.emit_activity({"event": event, "tool_call_id": tool_call_id, "name": name, **data})
