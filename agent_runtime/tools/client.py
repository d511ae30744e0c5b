"""The client-tool protocol over the data channel (server side).

    server → {"type":"client_tool_call","tool_call_id","name","arguments","execution_mode","preset_id"}
    client → {"type":"client_tool_ack","tool_call_id"}                    (the SDK acks by itself, ~2.3 s)
    client → {"type":"client_tool_result","tool_call_id","result":{…}}    (blocking tools)
    client → {"type":"client_tool_error","tool_call_id","message"}
    server → {"type":"client_tool_cancel","tool_call_id","reason"}        (barge-in, hang-up, timeout)

A blocking call waits for the ack (ack timeout) and then the result (the tool's result timeout); a
miss is an error result for the LLM and the client is told to close the UI. fire_and_forget returns
"sent" at once; its ack and any result are still recorded. Every step goes to `on_activity` as a
record the call runner persists on the call timeline.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

SendEvent = Callable[[dict[str, Any]], Awaitable[None]]
ActivitySink = Callable[[dict[str, Any]], None]

DEFAULT_ACK_TIMEOUT_S = 2.3
DEFAULT_RESULT_TIMEOUT_S = 120.0
FIRED_RETENTION_S = 300.0  # how long fire_and_forget calls are remembered for late acks/results

ClientStatus = Literal["ok", "sent", "error", "timeout", "interrupted"]


@dataclass(slots=True)
class ClientToolResult:
    status: ClientStatus
    result: Any = None  # the client's `result` object (status ok)
    error: str | None = None

    def for_llm(self) -> Any:
        """What the LLM reads as the tool's output."""
        if self.status == "ok":
            return self.result if self.result is not None else {"status": "success"}
        if self.status == "sent":
            return {"status": "sent", "message": "ok, sent to the user's screen; it runs without a reply"}
        if self.status == "interrupted":
            return {"status": "interrupted", "reason": self.error}
        return {"status": "error", "error": self.error}


@dataclass(slots=True)
class _Pending:
    tool_call_id: str
    name: str
    blocking: bool
    started: float
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: asyncio.Future[ClientToolResult] | None = None


class ClientToolBroker:
    """One per call: sends client tool calls through `send` and matches the client's answers."""

    def __init__(
        self,
        send: SendEvent,
        *,
        on_activity: ActivitySink | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT_S,
    ) -> None:
        self._send = send
        self._on_activity = on_activity
        self.ack_timeout = ack_timeout
        self._pending: dict[str, _Pending] = {}  # blocking calls awaiting ack/result
        self._fired: dict[str, _Pending] = {}  # fire_and_forget calls, for the record only

    @property
    def pending_ids(self) -> list[str]:
        return list(self._pending)

    async def call(
        self,
        *,
        tool_call_id: str,
        name: str,
        arguments: dict[str, Any],
        execution_mode: str,
        preset_id: str | None = None,
        result_timeout: float = DEFAULT_RESULT_TIMEOUT_S,
        extra: dict[str, Any] | None = None,
    ) -> ClientToolResult:
        blocking = execution_mode == "blocking"
        message = {
            "type": "client_tool_call",
            "tool_call_id": tool_call_id,
            "name": name,
            "arguments": arguments,
            "execution_mode": "blocking" if blocking else "fire_and_forget",
            "preset_id": preset_id,
            **(extra or {}),
        }
        entry = _Pending(tool_call_id, name, blocking, time.monotonic())
        if blocking:
            entry.outcome = asyncio.get_running_loop().create_future()
            self._pending[tool_call_id] = entry
        else:
            self._fired[tool_call_id] = entry
            asyncio.get_running_loop().call_later(FIRED_RETENTION_S, self._fired.pop, tool_call_id, None)
        self._record(entry, "tool_call", arguments=arguments, execution_mode=message["execution_mode"],
                     preset_id=preset_id)
        try:
            try:
                await self._send(message)
            except Exception as exc:  # the data channel is gone or closing
                self._pending.pop(tool_call_id, None)
                self._fired.pop(tool_call_id, None)
                self._record(entry, "tool_error", message=f"could not reach the client: {exc}")
                return ClientToolResult("error", error="The user's app could not be reached to run this tool.")
            if not blocking:
                return ClientToolResult("sent")
            return await self._await_blocking(entry, result_timeout)
        except asyncio.CancelledError:
            # The caller's task was cancelled (turn cancelled, call ending): close the UI too.
            if self._pending.pop(tool_call_id, None) is not None:
                self._record(entry, "tool_cancel", reason="cancelled")
                asyncio.get_running_loop().create_task(self._send_cancel(tool_call_id, "cancelled"))
            raise

    async def _await_blocking(self, entry: _Pending, result_timeout: float) -> ClientToolResult:
        assert entry.outcome is not None
        ack_wait = asyncio.ensure_future(entry.acked.wait())
        waiters: set[asyncio.Future[Any]] = {ack_wait, entry.outcome}
        try:
            await asyncio.wait(waiters, timeout=self.ack_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ack_wait.cancel()
        if not entry.outcome.done() and not entry.acked.is_set():
            return await self._give_up(entry, "ack", f"The user's app did not acknowledge the tool call "
                                                     f"within {self.ack_timeout:g} s.")
        try:
            return await asyncio.wait_for(asyncio.shield(entry.outcome), result_timeout)
        except TimeoutError:
            if entry.outcome.done():
                return entry.outcome.result()
            return await self._give_up(entry, "result", f"The user did not finish within {result_timeout:g} s.")

    async def _give_up(self, entry: _Pending, stage: str, message: str) -> ClientToolResult:
        self._pending.pop(entry.tool_call_id, None)
        self._record(entry, "tool_timeout", stage=stage, message=message)
        await self._send_cancel(entry.tool_call_id, "timeout")
        return ClientToolResult("timeout", error=message)

    def handle_message(self, message: dict[str, Any]) -> bool:
        """Feed one data-channel message; True when it belonged to the tool protocol."""
        kind = message.get("type")
        if kind not in ("client_tool_ack", "client_tool_result", "client_tool_error"):
            return False
        tool_call_id = str(message.get("tool_call_id") or "")
        entry = self._pending.get(tool_call_id)
        fired = self._fired.get(tool_call_id)
        if entry is None and fired is None:
            self._record_raw(tool_call_id, "tool_late", message_type=kind,
                             result=message.get("result"), message=message.get("message"))
            return True
        target = entry or fired
        assert target is not None
        if kind == "client_tool_ack":
            if not target.acked.is_set():
                target.acked.set()
                self._record(target, "tool_ack")
            return True
        target.acked.set()
        if kind == "client_tool_result":
            result = message.get("result")
            self._record(target, "tool_result", result=result)
            outcome = ClientToolResult("ok", result=result)
        else:
            text = str(message.get("message") or message.get("error") or "the client reported an error")
            self._record(target, "tool_error", message=text)
            outcome = ClientToolResult("error", error=text)
        if entry is not None:
            self._pending.pop(tool_call_id, None)
            if entry.outcome is not None and not entry.outcome.done():
                entry.outcome.set_result(outcome)
        else:
            self._fired.pop(tool_call_id, None)
        return True

    async def cancel_pending(self, reason: str) -> list[str]:
        """Cancel every pending blocking call: the client closes its UI, the waiters get `interrupted`."""
        entries = list(self._pending.values())
        self._pending.clear()
        for entry in entries:
            self._record(entry, "tool_cancel", reason=reason)
            if entry.outcome is not None and not entry.outcome.done():
                entry.outcome.set_result(ClientToolResult("interrupted", error=reason))
        await asyncio.gather(*(self._send_cancel(e.tool_call_id, reason) for e in entries))
        return [e.tool_call_id for e in entries]

    async def _send_cancel(self, tool_call_id: str, reason: str) -> None:
        try:
            await self._send({"type": "client_tool_cancel", "tool_call_id": tool_call_id, "reason": reason})
        except Exception as exc:  # nothing more to do: the client is gone
            log.debug("client_tool_cancel for %s not sent: %s", tool_call_id, exc)

    # ---- activity ---------------------------------------------------------------------------------

    def _record(self, entry: _Pending, event: str, **data: Any) -> None:
        elapsed_ms = round((time.monotonic() - entry.started) * 1000, 1)
        self.emit_activity({"event": event, "kind": "client", "tool_call_id": entry.tool_call_id,
                    "name": entry.name, "elapsed_ms": elapsed_ms, **data})

    def _record_raw(self, tool_call_id: str, event: str, **data: Any) -> None:
        self.emit_activity({"event": event, "kind": "client", "tool_call_id": tool_call_id, **data})

    def emit_activity(self, record: dict[str, Any]) -> None:
        """Stamp a record with `at` (epoch seconds) and hand it to the sink; a failing sink is logged."""
        record["at"] = time.time()
        if self._on_activity is None:
            return
        try:
            self._on_activity(record)
        except Exception:
            log.exception("tool activity sink failed")
