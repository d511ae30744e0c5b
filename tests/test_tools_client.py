"""The client-tool protocol, driven by an honest fake send function and injected client messages."""
from __future__ import annotations

import asyncio
from typing import Any

from agent_runtime.tools.client import ClientToolBroker


class FakeDataChannel:
    """Test double for the leg's send_event: records what the server sends; can be made to fail."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.new_message = asyncio.Event()
        self.fail = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("data channel closed")
        self.sent.append(message)
        self.new_message.set()

    async def next_of(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                for message in self.sent:
                    if message["type"] == kind:
                        return message
                self.new_message.clear()
                await self.new_message.wait()


def make_broker(**kwargs: Any) -> tuple[ClientToolBroker, FakeDataChannel, list[dict[str, Any]]]:
    channel = FakeDataChannel()
    activity: list[dict[str, Any]] = []
    return ClientToolBroker(channel.send, on_activity=activity.append, **kwargs), channel, activity


def start_call(broker: ClientToolBroker, mode: str = "blocking", **kwargs: Any) -> asyncio.Task:
    params = dict(tool_call_id="call_1", name="collect_user_data", arguments={"title": "Details", "n": 2},
                  execution_mode=mode, preset_id="vanira_form", result_timeout=30.0)
    params.update(kwargs)
    return asyncio.create_task(broker.call(**params))


async def test_blocking_call_ack_then_result():
    broker, channel, activity = make_broker()
    task = start_call(broker)
    sent = await channel.next_of("client_tool_call")
    assert sent == {"type": "client_tool_call", "tool_call_id": "call_1", "name": "collect_user_data",
                    "arguments": {"title": "Details", "n": 2}, "execution_mode": "blocking",
                    "preset_id": "vanira_form"}
    assert broker.handle_message({"type": "client_tool_ack", "tool_call_id": "call_1"})
    await asyncio.sleep(0)
    assert not task.done()
    assert broker.handle_message({"type": "client_tool_result", "tool_call_id": "call_1",
                                  "result": {"name": "Teja", "email": "t@example.com"}})
    result = await task
    assert result.status == "ok"
    assert result.for_llm() == {"name": "Teja", "email": "t@example.com"}
    assert [a["event"] for a in activity] == ["tool_call", "tool_ack", "tool_result"]
    assert all(a["tool_call_id"] == "call_1" and a["kind"] == "client" for a in activity)
    assert activity[2]["elapsed_ms"] >= activity[1]["elapsed_ms"] >= 0
    assert broker.pending_ids == []


async def test_result_without_ack_counts_as_ack():
    broker, channel, _ = make_broker(ack_timeout=5)
    task = start_call(broker)
    await channel.next_of("client_tool_call")
    broker.handle_message({"type": "client_tool_result", "tool_call_id": "call_1", "result": {"status": "success"}})
    assert (await task).status == "ok"


async def test_ack_timeout_is_an_error_result_and_cancels_the_ui():
    broker, channel, activity = make_broker(ack_timeout=0.05)
    result = await start_call(broker)
    assert result.status == "timeout"
    assert "acknowledge" in result.for_llm()["error"]
    cancel = await channel.next_of("client_tool_cancel")
    assert cancel == {"type": "client_tool_cancel", "tool_call_id": "call_1", "reason": "timeout"}
    assert activity[-1]["event"] == "tool_timeout" and activity[-1]["stage"] == "ack"
    # a late answer is recorded, not delivered anywhere
    assert broker.handle_message({"type": "client_tool_result", "tool_call_id": "call_1", "result": {}})
    assert activity[-1]["event"] == "tool_late"


async def test_result_timeout_after_ack():
    broker, channel, activity = make_broker(ack_timeout=5)
    task = start_call(broker, result_timeout=0.1)
    await channel.next_of("client_tool_call")
    broker.handle_message({"type": "client_tool_ack", "tool_call_id": "call_1"})
    result = await task
    assert result.status == "timeout"
    assert result.for_llm()["status"] == "error"
    assert (await channel.next_of("client_tool_cancel"))["reason"] == "timeout"
    assert activity[-1]["stage"] == "result"


async def test_client_error():
    broker, channel, activity = make_broker()
    task = start_call(broker)
    await channel.next_of("client_tool_call")
    broker.handle_message({"type": "client_tool_ack", "tool_call_id": "call_1"})
    broker.handle_message({"type": "client_tool_error", "tool_call_id": "call_1", "message": "Booking failed"})
    result = await task
    assert result.status == "error"
    assert result.for_llm() == {"status": "error", "error": "Booking failed"}
    assert activity[-1] == {**activity[-1], "event": "tool_error", "message": "Booking failed"}


async def test_cancel_pending_on_barge_in():
    broker, channel, activity = make_broker()
    first = start_call(broker)
    second = start_call(broker, tool_call_id="call_2")
    fired = start_call(broker, mode="fire_and_forget", tool_call_id="call_3")
    assert (await fired).status == "sent"
    await channel.next_of("client_tool_call")
    await asyncio.sleep(0)
    broker.handle_message({"type": "client_tool_ack", "tool_call_id": "call_1"})
    cancelled = await broker.cancel_pending("barge_in")
    assert sorted(cancelled) == ["call_1", "call_2"]  # fire_and_forget calls have nothing to cancel
    results = await asyncio.gather(first, second)
    assert [r.status for r in results] == ["interrupted", "interrupted"]
    assert results[0].for_llm() == {"status": "interrupted", "reason": "barge_in"}
    cancels = [m for m in channel.sent if m["type"] == "client_tool_cancel"]
    assert sorted(m["tool_call_id"] for m in cancels) == ["call_1", "call_2"]
    assert {m["reason"] for m in cancels} == {"barge_in"}
    # the SDK answers the cancel with an interrupted result: recorded as late
    broker.handle_message({"type": "client_tool_result", "tool_call_id": "call_1",
                           "result": {"status": "interrupted", "reason": "barge_in"}})
    assert activity[-1]["event"] == "tool_late"
    assert await broker.cancel_pending("again") == []


async def test_fire_and_forget_returns_at_once_and_records_the_ack():
    broker, channel, activity = make_broker(ack_timeout=0.05)
    result = await start_call(broker, mode="fire_and_forget", preset_id="vanira_camera")
    assert result.status == "sent"
    assert result.for_llm()["status"] == "sent"
    assert channel.sent[0]["execution_mode"] == "fire_and_forget"
    assert broker.pending_ids == []
    broker.handle_message({"type": "client_tool_ack", "tool_call_id": "call_1"})
    assert activity[-1]["event"] == "tool_ack"


async def test_send_failure_is_an_error_result():
    broker, channel, activity = make_broker()
    channel.fail = True
    result = await start_call(broker)
    assert result.status == "error"
    assert broker.pending_ids == []
    assert activity[-1]["event"] == "tool_error"


async def test_cancelling_the_waiting_task_closes_the_ui():
    broker, channel, activity = make_broker()
    task = start_call(broker)
    await channel.next_of("client_tool_call")
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert (await channel.next_of("client_tool_cancel"))["reason"] == "cancelled"
    assert broker.pending_ids == []
    assert activity[-1]["event"] == "tool_cancel"


async def test_other_messages_are_not_consumed():
    broker, _, _ = make_broker()
    assert not broker.handle_message({"type": "client_context_update", "data": {}})
