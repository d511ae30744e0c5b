"""The executor the conversation holds: exposure per channel, routing to client/server tools, built-ins."""
from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from agent_runtime.providers.base import ToolCallRequest
from agent_runtime.tools.executor import ToolExecutor
from presets.catalog import seed_bodies
from presets.validation import validate_tool
from test_tools_client import FakeDataChannel
from test_tools_server import webhook  # noqa: F401  (fixture)


def seed(name: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(seed_bodies()[name])
    body.update(changes)
    return validate_tool(body)


def web_only_map() -> dict[str, Any]:
    return validate_tool({"name": "show_location_map", "description": "Show a map", "type": "client",
                          "channels": ["voice_web"], "parameters": [
                              {"name": "location", "type": "string", "required": True},
                              {"name": "zoom", "type": "integer"}]})


@pytest.fixture
def channel() -> FakeDataChannel:
    return FakeDataChannel()


def make(tools: list[dict[str, Any]], channel: FakeDataChannel, call_channel: str = "voice_web",
         **kwargs: Any) -> tuple[ToolExecutor, list[dict[str, Any]]]:
    activity: list[dict[str, Any]] = []
    executor = ToolExecutor(tools, channel=call_channel, send_event=channel.send, on_activity=activity.append,
                            **kwargs)
    return executor, activity


async def test_definitions_follow_channel_and_activity(channel):
    inactive = {**seed("vanira_calendar"), "is_active": False}
    tools = [seed("vanira_form"), web_only_map(), seed("human_transfer"), inactive]
    web, _ = make(tools, channel)
    names = [d["function"]["name"] for d in web.definitions()]
    assert names == ["collect_user_data", "show_location_map", "end_call"]
    sip, _ = make(tools, channel, call_channel="voice_sip")  # the leg's name for the telephony channel
    assert [d["function"]["name"] for d in sip.definitions()] == ["collect_user_data", "human_transfer", "end_call"]
    assert [d["function"]["name"] for d in web.definitions("voice_telephony")] == [
        "collect_user_data", "human_transfer", "end_call"]
    await web.aclose()
    await sip.aclose()


async def test_preset_call_round_trip(channel):
    executor, activity = make([seed("vanira_form")], channel)
    task = asyncio.create_task(executor.execute(ToolCallRequest("call_9", "collect_user_data",
                                                                {"reason": "To look up your order"})))
    sent = await channel.next_of("client_tool_call")
    assert sent["tool_call_id"] == "call_9"
    assert sent["name"] == "collect_user_data"
    assert sent["execution_mode"] == "blocking"
    assert sent["preset_id"] == "vanira_form"
    assert sent["arguments"]["fields"] == "Name, Email, Phone"
    assert sent["arguments"]["agent_arguments"] == {"reason": "To look up your order"}
    assert executor.handle_client_message({"type": "client_tool_ack", "tool_call_id": "call_9"})
    executor.handle_client_message({"type": "client_tool_result", "tool_call_id": "call_9",
                                    "result": {"Name": "Teja"}})
    outcome = await task
    assert outcome.kind == "client" and not outcome.is_error
    assert json.loads(outcome.content) == {"Name": "Teja"}
    assert [a["event"] for a in activity] == ["tool_call", "tool_ack", "tool_result"]
    await executor.aclose()


async def test_fire_and_forget_custom_tool_and_barge_in(channel):
    executor, _ = make([web_only_map(), seed("vanira_navigate")], channel)
    outcome = await executor.execute(ToolCallRequest("c1", "show_location_map", {"location": "Paris", "zoom": 12}))
    assert json.loads(outcome.content)["status"] == "sent"
    assert channel.sent[0]["arguments"] == {"location": "Paris", "zoom": 12}
    assert channel.sent[0]["preset_id"] is None
    nav = asyncio.create_task(executor.execute(ToolCallRequest("c2", "navigate_user", {})))
    assert (await channel.next_of("client_tool_call")) and len(channel.sent) >= 1
    while len(channel.sent) < 2:
        await asyncio.sleep(0.01)
    assert channel.sent[1]["arguments"] == {"preset_id": "vanira_navigate", "target_url": "/pricing",
                                            "agent_arguments": {}}
    assert await executor.cancel_pending("barge_in") == ["c2"]
    outcome = await nav
    assert outcome.interrupted and json.loads(outcome.content) == {"status": "interrupted", "reason": "barge_in"}
    assert channel.sent[-1] == {"type": "client_tool_cancel", "tool_call_id": "c2", "reason": "barge_in"}
    await executor.aclose()


async def test_errors_the_agent_can_recover_from(channel):
    executor, activity = make([web_only_map(), seed("vanira_form")], channel, ack_timeout=0.05)
    unknown = await executor.execute(ToolCallRequest("c1", "launch_rockets", {}))
    assert unknown.is_error and "no tool named" in unknown.content
    missing = await executor.execute(ToolCallRequest("c2", "show_location_map", {"zoom": 3}))
    assert missing.is_error and "location" in missing.content
    assert channel.sent == []  # nothing reached the page
    timed_out = await executor.execute(ToolCallRequest("c3", "collect_user_data", {"reason": "x"}))
    assert timed_out.is_error and "acknowledge" in timed_out.content
    assert {a["event"] for a in activity} >= {"tool_error", "tool_timeout"}
    await executor.aclose()


async def test_builtins(channel):
    tools = [seed("agent_transfer"), seed("human_transfer")]
    web, _ = make(tools, channel)
    end = await web.execute(ToolCallRequest("e1", "end_call", {}))
    assert end.action == {"type": "end_call", "reason": "agent_ended_call"}
    assert channel.sent[-1]["name"] == "end_call" and channel.sent[-1]["execution_mode"] == "fire_and_forget"
    transfer = await web.execute(ToolCallRequest("t1", "agent_transfer", {"agent_id": "made-up-by-the-llm"}))
    # the stored request body pins the target agent; the LLM's guess does not override it
    assert transfer.action == {"type": "agent_transfer", "agent_id": "dcf2b11c-81c2-4619-8483-580c8e25cb23"}
    human = await web.execute(ToolCallRequest("h1", "human_transfer", {"to_number": "+15550100"}))
    assert human.is_error and "phone calls only" in human.content and human.action is None
    await web.aclose()

    sip, _ = make(tools, channel, call_channel="voice_telephony")
    human = await sip.execute(ToolCallRequest("h2", "human_transfer", {"to_number": "+15550100"}))
    assert human.action == {"type": "human_transfer", "to_number": "919182517283"}
    await sip.aclose()


async def test_server_tool_through_the_executor(channel, webhook):  # noqa: F811
    order = validate_tool({
        "name": "check_order_status", "description": "d", "type": "server",
        "parameters": [{"name": "order_id", "type": "string", "required": True}],
        "server": {"url": f"{webhook.base_url}/hook/orders", "method": "POST"},
        "request": {"body": {"order_id": "{{order_id}}", "source": "vanira"}, "headers": {"X-API-Key": "k"}},
    })
    fire = {**order, "ref_code": "log_order", "execution_mode": "fire_and_forget"}
    executor, activity = make([order, fire], channel, allow_private_webhooks=True)
    outcome = await executor.execute(ToolCallRequest("s1", "check_order_status", {"order_id": "A1"}))
    assert outcome.kind == "server" and not outcome.is_error
    assert json.loads(outcome.content) == {"status": "shipped", "eta_days": 2}
    assert json.loads(webhook.requests[0]["body"]) == {"order_id": "A1", "source": "vanira"}
    assert [a["event"] for a in activity] == ["tool_call", "tool_result"]
    assert activity[1]["status_code"] == 200
    sent = await executor.execute(ToolCallRequest("s2", "log_order", {"order_id": "B2"}))
    assert json.loads(sent.content)["status"] == "sent"
    await executor.aclose()  # waits for the fire_and_forget webhook
    assert len(webhook.requests) == 2

    guarded, _ = make([order], channel)  # TALKWIRE_ALLOW_PRIVATE_WEBHOOKS off
    refused = await guarded.execute(ToolCallRequest("s3", "check_order_status", {"order_id": "A1"}))
    assert refused.is_error and "refused" in refused.content
    await guarded.aclose()
