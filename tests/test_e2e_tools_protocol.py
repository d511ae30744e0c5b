"""Client tools over real web calls: every path of the client-tool protocol, context and actions, timeline.

One live server per module (`talkwire serve` on a loopback port, FAKE STT/TTS so nothing waits on models)
with the OPENAI LLM provider pointed at `openai_fake`, which scripts the tool calls. An aiortc caller does
Phase 1 and Phase 2 and plays the browser's part on the data channel. Turns start with
`client_action_trigger` (an immediate reply, no speech needed) except where speech is the point (barge-in).
"""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
import soxr
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.providers.fake import FakeTTS
from conftest import LiveServer, make_keys
from control_api.settings import Settings
from openai_fake import OpenAIFake
from test_e2e_webrtc import serving
from webrtc_caller import WebRtcCaller

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Env:
    server: LiveServer
    fake: OpenAIFake
    agent_id: str
    tools: dict[str, str]  # ref_code → tool id

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.server.secret_key}

    async def api(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=60) as http:
            response = await http.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


FAKE_STACK = {
    "model": None,  # set to the OPENAI model per env
    "transcription": {"provider": "FAKE", "model": "scripted"},
    "voice": {"provider": "FAKE", "name": "tone"},
}

TOOLS = [
    {  # blocking custom client tool; client_fields exercise every templating type
        "name": "show_card", "description": "Show a product card.", "type": "client", "execution_mode": "blocking",
        "parameters": [
            {"name": "title", "type": "string", "description": "Card title", "required": True},
            {"name": "count", "type": "number", "description": "How many"},
            {"name": "featured", "type": "boolean", "description": "Featured?"},
            {"name": "tags", "type": "array", "description": "Tags", "items": {"type": "string"}},
        ],
        "client_fields": {"heading": "{{title}}", "quantity": "{{count}}", "flag": "{{featured}}",
                          "labels": "{{tags}}", "caption": "{{title}} x{{count}}", "static_size": 3},
        "timeout_seconds": 30,
    },
    {"name": "ping_ui", "description": "Flash the screen.", "type": "client", "execution_mode": "fire_and_forget",
     "parameters": [{"name": "color", "type": "string", "description": "Colour"}]},
    {"name": "slow_ui", "description": "A tool the page answers late.", "type": "client",
     "execution_mode": "blocking", "parameters": [], "timeout_seconds": 1.5},
]


@asynccontextmanager
async def tools_server(base: Path, template: Path, **overrides: Any) -> AsyncIterator[Env]:
    """A live server (FAKE STT/TTS, OPENAI LLM on a fresh OpenAIFake, private webhooks allowed) with an
    agent that has TOOLS attached. `overrides` change the settings."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True)
    shutil.copyfile(template, data_dir / "talkwire.db")
    secret, publishable = make_keys()
    async with OpenAIFake() as fake:
        settings = Settings(data_dir=data_dir, secret_key=secret, publishable_key=publishable, providers="fake",
                            openai_base_url=fake.base_url, openai_api_key=fake.api_key,
                            allow_private_webhooks=True, **overrides)
        async with serving(settings) as server:
            env = Env(server, fake, "", {})
            agent = await env.api("POST", "/assistant", json={
                "name": "Tools agent", "welcome_message": "", "agent_prompt": "You drive the user's screen.",
                **FAKE_STACK, "model": {"provider": "OPENAI", "model": fake.models[0]},
                "call_end_duration": 0, "call_user_alert_duration": 0})
            env.agent_id = agent["id"]
            for body in TOOLS:
                tool = await env.api("POST", "/tools", json=body)
                env.tools[tool["ref_code"]] = tool["id"]
                await env.api("POST", f"/assistant/{env.agent_id}/tools", json={"tool_id": tool["id"]})
            yield env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path) -> AsyncIterator[Env]:
    async with tools_server(tmp_path_factory.mktemp("tools-e2e"), migrated_sqlite_template) as env:
        yield env


async def connect(env: Env, agent_id: str | None = None) -> WebRtcCaller:
    caller = WebRtcCaller()
    await caller.call(env.server.base_url, agent_id or env.agent_id, env.server.publishable_key)
    return caller


async def call_record(env: Env, call_id: str, *, finished: bool = True) -> dict[str, Any]:
    for _ in range(600):
        call = await env.api("GET", f"/calls/{call_id}")
        if not finished or call["status"] in ("completed", "failed"):
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} did not finish: {call['status']}")


def tool_messages(request_body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request_body["messages"] if m["role"] == "tool"]


async def wait_requests(fake: OpenAIFake, count: int, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.05)):
        if len(fake.chat_requests) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} LLM requests, got {len(fake.chat_requests)}")


async def test_blocking_result_with_typed_arguments(env: Env) -> None:
    """The LLM calls a blocking client tool: the page gets typed, templated arguments, acks, answers; the
    LLM continues with the result; the timeline and GET /calls/{id} hold call, ack and result."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("show_card", {"title": "Blue shoes", "count": 2, "featured": True, "tags": ["new", "sale"]}))
    fake.add_text("Here are the blue shoes.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "show_product", "data": {"sku": "B-1"}})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        assert call["name"] == "show_card" and call["execution_mode"] == "blocking" and call["preset_id"] is None
        assert call["arguments"] == {"heading": "Blue shoes", "quantity": 2, "flag": True,
                                     "labels": ["new", "sale"], "caption": "Blue shoes x2", "static_size": 3}
        caller.send({"type": "client_tool_ack", "tool_call_id": call["tool_call_id"]})
        caller.send({"type": "client_tool_result", "tool_call_id": call["tool_call_id"],
                     "result": {"status": "success", "shown": True}})
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("role") == "agent"
                                      and m.get("is_final") and "blue shoes" in m.get("text", ""), timeout=60)
        await wait_requests(fake, before + 2)
        first, second = fake.chat_requests[before].body, fake.chat_requests[before + 1].body
        # The action reached the LLM as a user turn, and the tool definitions carry the typed parameters.
        assert any("show_product" in str(m.get("content")) and "B-1" in str(m.get("content"))
                   for m in first["messages"] if m["role"] == "user")
        schema = next(t for t in first["tools"] if t["function"]["name"] == "show_card")["function"]["parameters"]
        assert schema["properties"]["count"]["type"] == "number" and schema["required"] == ["title"]
        assert json.loads(tool_messages(second)[-1]["content"]) == {"status": "success", "shown": True}
        roles = [m["role"] for m in second["messages"]]
        assert roles == ["system", "user", "assistant", "tool"]  # the action, the tool call, its result
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    tool_events = [e["data"] for e in record["timeline"] if e["kind"] == "tool"]
    assert [e["event"] for e in tool_events if e.get("name") == "show_card"] == ["tool_call", "tool_ack", "tool_result"]
    assert tool_events[-1]["result"] == {"status": "success", "shown": True} and "elapsed_ms" in tool_events[-1]
    assert any(e["kind"] == "client" and e["data"]["kind"] == "action_trigger" for e in record["timeline"])


async def test_client_error_reaches_the_llm(env: Env) -> None:
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("show_card", {"title": "Hat"}))
    fake.add_text("Sorry, that did not work.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "show_hat"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        caller.send({"type": "client_tool_ack", "tool_call_id": call["tool_call_id"]})
        caller.send({"type": "client_tool_error", "tool_call_id": call["tool_call_id"],
                     "message": "card widget crashed"})
        await wait_requests(fake, before + 2)
        result = json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"])
        assert result["status"] == "error" and "card widget crashed" in result["error"]
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    assert any(e["kind"] == "tool" and e["data"]["event"] == "tool_error" for e in record["timeline"])


async def test_ack_timeout_is_an_error_result_and_a_cancel(env: Env) -> None:
    """No ack within 2.3 s: the LLM gets an error result, the page a client_tool_cancel (reason timeout)."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("show_card", {"title": "Socks"}))
    fake.add_text("Your screen did not respond.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "show_socks"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        cancel = await caller.wait_for_message("client_tool_cancel", timeout=60)
        assert cancel == {"type": "client_tool_cancel", "tool_call_id": call["tool_call_id"], "reason": "timeout"}
        await wait_requests(fake, before + 2)
        result = json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"])
        assert result["status"] == "error" and "acknowledge" in result["error"]
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    timeouts = [e["data"] for e in record["timeline"] if e["kind"] == "tool" and e["data"]["event"] == "tool_timeout"]
    assert timeouts and timeouts[0]["stage"] == "ack"


async def test_result_timeout_per_tool(env: Env) -> None:
    """Acked but no result within the tool's timeout_seconds (1.5 s): error result, cancel, and a late result
    is recorded as late instead of reaching the LLM."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("slow_ui", {}))
    fake.add_text("That took too long.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "slow"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        caller.send({"type": "client_tool_ack", "tool_call_id": call["tool_call_id"]})
        await caller.wait_for_message("client_tool_cancel", timeout=60)
        caller.send({"type": "client_tool_result", "tool_call_id": call["tool_call_id"], "result": {"late": True}})
        await wait_requests(fake, before + 2)
        result = json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"])
        assert result["status"] == "error" and "1.5" in result["error"]
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    events = [e["data"]["event"] for e in record["timeline"] if e["kind"] == "tool"]
    assert events[:3] == ["tool_call", "tool_ack", "tool_timeout"] and "tool_late" in events


async def test_fire_and_forget_continues_at_once(env: Env) -> None:
    """fire_and_forget: the LLM continues with "sent" without waiting for the page, which never answers."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("ping_ui", {"color": "green"}))
    fake.add_text("Done, the screen flashed.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "flash"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        assert call["execution_mode"] == "fire_and_forget" and call["arguments"] == {"color": "green"}
        await wait_requests(fake, before + 2)
        assert json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"])["status"] == "sent"
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("is_final")
                                      and "flashed" in m.get("text", ""), timeout=60)
    finally:
        await caller.close()


async def test_barge_in_cancels_pending_tool(env: Env) -> None:
    """The caller speaks while a blocking tool is pending: clearAudio and client_tool_cancel (barge_in); the
    page answers `interrupted`, which is recorded but no longer awaited."""
    fake = env.fake
    fake.add_tool_calls(("show_card", {"title": "Boots"}), text="Let me show you the boots on your screen now.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "boots"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        caller.send({"type": "client_tool_ack", "tool_call_id": call["tool_call_id"]})
        await caller.wait_for_audio(seconds=0.3, timeout=60)  # the agent is speaking
        speech = FakeTTS().render("no wait, show me something else please")
        caller.mic.play(np.concatenate([soxr.resample(speech, 16000, 48000).astype(np.int16),
                                        np.zeros(48000, dtype=np.int16)]))
        cancel = await caller.wait_for_message("client_tool_cancel", timeout=60)
        assert cancel["tool_call_id"] == call["tool_call_id"] and cancel["reason"] == "barge_in"
        assert any(m.get("type") == "clearAudio" for m in caller.messages)
        caller.send({"type": "client_tool_result", "tool_call_id": call["tool_call_id"],
                     "result": {"status": "interrupted", "reason": "barge_in"}})
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("role") == "user"
                                      and m.get("is_final"), timeout=60)
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    events = [e["data"] for e in record["timeline"] if e["kind"] == "tool"]
    assert any(e["event"] == "tool_cancel" and e["reason"] == "barge_in" for e in events)
    assert any(e["kind"] == "barge_in" for e in record["timeline"])


async def test_context_update_is_silent_then_used(env: Env) -> None:
    """client_context_update (nested `data` or merged fields): no reply, recorded, and in the next LLM request;
    an unknown client_* event is recorded and given to the agent; an interrupt with nothing playing is a no-op."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_text("Gold members get free shipping.")
    caller = await connect(env)
    try:
        caller.send({"type": "client_context_update", "data": {"active_page": "/pricing", "customer_tier": "gold"}})
        caller.send({"type": "client_context_update", "user_action": "user_navigated", "current_route": "/cart"})
        caller.send({"type": "client_live_camera_started", "facing": "user"})
        caller.send({"type": "client_interrupt_audio"})
        await asyncio.sleep(1.0)
        assert len(fake.chat_requests) == before  # silent: no reply
        assert not any(m.get("type") == "error" for m in caller.messages)
        caller.send({"type": "client_action_trigger", "action": "ask_shipping"})
        await wait_requests(fake, before + 1)
        system = [str(m["content"]) for m in fake.chat_requests[before].body["messages"] if m["role"] == "system"]
        assert any("customer_tier" in s and "gold" in s for s in system)
        assert any("/cart" in s and "user_navigated" in s for s in system)
        assert any("client_live_camera_started" in s for s in system)
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    kinds = [e["data"]["kind"] for e in record["timeline"] if e["kind"] == "client"]
    assert kinds[:5] == ["context", "context", "client_event", "interrupt", "action_trigger"]


async def test_session_continuity(env: Env) -> None:
    """A new web call with the earlier call's call_id + prospect_id continues it: no second welcome, the
    earlier history and context reach the LLM; a foreign prospect or unknown call is refused."""
    fake = env.fake
    await env.api("PATCH", f"/assistant/{env.agent_id}", json={"welcome_message": "Welcome to the shoe shop."})
    try:
        first = await connect(env)
        try:
            await first.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("role") == "agent"
                                         and m.get("is_final"), timeout=60)
            first.send({"type": "client_context_update", "cart": "two red scarves"})
            await asyncio.sleep(0.5)
        finally:
            await first.close()
        previous = await call_record(env, first.call_id)
        prospect_id = previous["prospect"]["id"]

        async with httpx.AsyncClient(base_url=env.server.base_url, timeout=60) as http:
            pk = {"X-API-Key": env.server.publishable_key}
            body = {"agent_id": env.agent_id, "type": "web", "call_id": first.call_id, "prospect_id": prospect_id}
            created = (await http.post("/calls/create", json=body, headers=pk)).json()
            bad = await http.post("/calls/create", headers=pk, json={**body, "prospect_id": _uuid()})
            assert bad.status_code == 404 and bad.json()["error"]["code"] == "PROSPECT_NOT_FOUND"
            bad = await http.post("/calls/create", headers=pk, json={**body, "call_id": _uuid()})
            assert bad.status_code == 404 and bad.json()["error"]["code"] == "CALL_NOT_FOUND"
            second = WebRtcCaller()
            second.call_id = created["call_id"]
            await second.post_offer(http, created["worker_url"])
        try:
            await second.wait_connected()
            before = len(fake.chat_requests)
            fake.add_text("You have two red scarves in your cart.")
            second.send({"type": "client_action_trigger", "action": "what_is_in_my_cart"})
            await wait_requests(fake, before + 1)
            messages = fake.chat_requests[before].body["messages"]
            assert any(m["role"] == "assistant" and "shoe shop" in str(m["content"]) for m in messages)
            assert any(m["role"] == "system" and "two red scarves" in str(m["content"]) for m in messages)
            await second.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("is_final")
                                          and "cart" in m.get("text", ""), timeout=60)
            welcomes = [m for m in second.messages
                        if m.get("type") == "transcription" and "shoe shop" in m.get("text", "")]
            assert not welcomes
        finally:
            await second.close()
        record = await call_record(env, created["call_id"])
        assert record["continues_call_id"] == first.call_id
        assert any(e["kind"] == "session_continued" for e in record["timeline"])
    finally:
        await env.api("PATCH", f"/assistant/{env.agent_id}", json={"welcome_message": ""})


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


async def test_agent_transfer_in_the_same_call(env: Env) -> None:
    """agent_transfer: once the agent's words played, the call goes on with the other agent's prompt, voice
    and tools, history kept; its welcome is spoken. human_transfer on a web call is a clear tool error."""
    fake = env.fake
    billing = await env.api("POST", "/assistant", json={
        "name": "Billing agent", "welcome_message": "Billing here, how can I help?",
        "agent_prompt": "You are the billing specialist.", **FAKE_STACK,
        "model": {"provider": "OPENAI", "model": fake.models[1]}})
    for body in (
        {"name": "agent_transfer", "ref_code": "agent_transfer", "description": "Hand over to another agent.",
         "type": "server", "channels": ["voice_web"],
         "server": {"url": "https://example.com/transfer", "method": "POST"},
         "parameters": [{"name": "agent_id", "type": "string", "description": "Agent", "required": True}]},
        {"name": "human_transfer", "ref_code": "human_transfer", "description": "Transfers to a human.",
         "type": "server", "channels": ["voice_telephony"],
         "server": {"url": "https://example.com/h", "method": "POST"},
         "parameters": [{"name": "to_number", "type": "string", "description": "Number", "required": True}]},
    ):
        tool = await env.api("POST", "/tools", json=body)
        await env.api("POST", f"/assistant/{env.agent_id}/tools", json={"tool_id": tool["id"]})
    before = len(fake.chat_requests)
    fake.add_tool_calls(("human_transfer", {"to_number": "+14155550100"}))
    fake.add_tool_calls(("agent_transfer", {"agent_id": billing["id"]}), text="Let me get billing.")
    fake.add_text("Your invoice is paid.")  # the billing agent's answer: the first agent says no more
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "billing_question", "data": {"invoice": "INV-7"}})
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("is_final")
                                      and "Billing here" in m.get("text", ""), timeout=60)
        await wait_requests(fake, before + 2)
        human = json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"])
        assert human["status"] == "error" and "phone calls only" in human["error"]
        caller.send({"type": "client_action_trigger", "action": "is_it_paid"})
        await wait_requests(fake, before + 3)
        after = fake.chat_requests[before + 2].body
        assert after["model"] == fake.models[1]
        assert after["messages"][0] == {"role": "system", "content": "You are the billing specialist."}
        assert any("INV-7" in str(m.get("content")) for m in after["messages"])  # history kept
        assert {t["function"]["name"] for t in after["tools"]} == {"end_call"}  # the billing agent's tools
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    transferred = [e["data"] for e in record["timeline"] if e["kind"] == "agent_transferred"]
    assert transferred == [{"agent_id": billing["id"], "name": "Billing agent"}]


async def test_end_call_hangs_up_after_the_goodbye(env: Env) -> None:
    fake = env.fake
    fake.add_tool_calls(("end_call", {}), text="Goodbye!")
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "bye"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        assert call["name"] == "end_call" and call["execution_mode"] == "fire_and_forget"
        await asyncio.wait_for(caller.closed.wait(), 30)
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    assert record["status"] == "completed" and record["end_reason"] == "agent_hangup"
    assert any(t["role"] == "agent" and "Goodbye" in t["text"] for t in record["transcript"])


async def test_server_tool_webhook_over_a_call(env: Env) -> None:
    """A server tool during a call: the templated method, URL query, headers and body arrive at a real local
    webhook as configured, and its JSON answer is what the LLM reads next."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append({"method": request.method, "path": request.scope["raw_path"].decode(),
                         "query": dict(request.query_params),
                         "headers": dict(request.headers), "body": await request.json()})
        return JSONResponse({"status": "shipped", "eta_days": 2})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/orders/{id:path}", hook, methods=["PUT"])]),
                                           log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    port = sock.getsockname()[1]
    try:
        tool = await env.api("POST", "/tools", json={
            "name": "update_order", "description": "Update an order.", "type": "server",
            "parameters": [{"name": "order_id", "type": "string", "description": "Order", "required": True},
                           {"name": "qty", "type": "integer", "description": "Quantity", "required": True},
                           {"name": "gift", "type": "boolean", "description": "Gift wrap"}],
            "server": {"url": f"http://127.0.0.1:{port}/orders/{{{{order_id}}}}", "method": "PUT"},
            "request": {"body": {"quantity": "{{qty}}", "gift": "{{gift}}", "note": "order {{order_id}}"},
                        "headers": {"X-Order": "{{order_id}}", "Authorization": "Bearer t0k"},
                        "query": {"source": "voice", "qty": "{{qty}}"}}})
        await env.api("POST", f"/assistant/{env.agent_id}/tools", json={"tool_id": tool["id"]})
        fake = env.fake
        before = len(fake.chat_requests)
        fake.add_tool_calls(("update_order", {"order_id": "A/17", "qty": 3, "gift": True}))
        fake.add_text("Your order is updated.")
        caller = await connect(env)
        try:
            caller.send({"type": "client_action_trigger", "action": "update"})
            await wait_requests(fake, before + 2)
        finally:
            await caller.close()
        got = received[-1]
        assert got["method"] == "PUT" and got["query"] == {"source": "voice", "qty": "3"}
        assert got["path"] == "/orders/A%2F17"  # a path argument is percent-encoded
        assert got["headers"]["x-order"] == "A/17" and got["headers"]["authorization"] == "Bearer t0k"
        assert got["body"] == {"quantity": 3, "gift": True, "note": "order A/17"}
        assert json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"]) == {
            "status": "shipped", "eta_days": 2}
        record = await call_record(env, caller.call_id)
        server_events = [e["data"] for e in record["timeline"] if e["kind"] == "tool" and e["data"]["kind"] == "server"]
        assert [e["event"] for e in server_events] == ["tool_call", "tool_result"]
        assert server_events[1]["status_code"] == 200 and "elapsed_ms" in server_events[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_audio_only_interrupt_keeps_the_pending_tool(env: Env) -> None:
    """client_interrupt_audio while a blocking tool is pending: the audio is cut (clearAudio) but the tool
    stays open and its later result still reaches the LLM; client_action_interrupt cancels it."""
    fake = env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(("show_card", {"title": "Scarf"}), text="Let me put the scarf on your screen right now.")
    fake.add_text("There it is.")
    fake.add_tool_calls(("show_card", {"title": "Gloves"}))
    caller = await connect(env)
    try:
        caller.send({"type": "client_action_trigger", "action": "scarf"})
        call = await caller.wait_for_message("client_tool_call", timeout=60)
        caller.send({"type": "client_tool_ack", "tool_call_id": call["tool_call_id"]})
        await caller.wait_for_audio(seconds=0.2, timeout=60)
        seen = len(caller.messages)
        caller.send({"type": "client_interrupt_audio"})
        await caller.wait_for_message("clearAudio", after=seen, timeout=30)
        await asyncio.sleep(0.5)
        assert not any(m.get("type") == "client_tool_cancel" for m in caller.messages)
        caller.send({"type": "client_tool_result", "tool_call_id": call["tool_call_id"], "result": {"shown": "scarf"}})
        await wait_requests(fake, before + 2)
        assert json.loads(tool_messages(fake.chat_requests[before + 1].body)[-1]["content"]) == {"shown": "scarf"}

        seen = len(caller.messages)
        caller.send({"type": "client_action_trigger", "action": "gloves"})
        second = await caller.wait_for_message("client_tool_call", after=seen, timeout=60)
        caller.send({"type": "client_tool_ack", "tool_call_id": second["tool_call_id"]})
        caller.send({"type": "client_action_interrupt"})
        cancel = await caller.wait_for_message("client_tool_cancel", after=seen, timeout=30)
        assert cancel["tool_call_id"] == second["tool_call_id"] and cancel["reason"] == "action_interrupt"
    finally:
        await caller.close()


async def test_continuing_a_live_session_takes_it_over(env: Env) -> None:
    """Continuing a call that is still connected (a reload before the old connection timed out): the new
    call takes over its history and unused context, and the old one is hung up (end_reason session_continued)."""
    fake = env.fake
    first = await connect(env)
    second = WebRtcCaller()
    try:
        first.send({"type": "client_context_update", "data": {"basket": "three blue mugs"}})
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=env.server.base_url, timeout=60) as http:
            created = (await http.post("/calls/create", headers={"X-API-Key": env.server.publishable_key},
                                       json={"agent_id": env.agent_id, "type": "web", "call_id": first.call_id})).json()
            await second.post_offer(http, created["worker_url"])
        await second.wait_connected(60)
        await asyncio.wait_for(first.closed.wait(), 60)
        before = len(fake.chat_requests)
        fake.add_text("Three blue mugs, yes.")
        second.send({"type": "client_action_trigger", "action": "basket"})
        await wait_requests(fake, before + 1)
        assert any("three blue mugs" in str(m["content"]) for m in fake.chat_requests[before].body["messages"])
    finally:
        await first.close()
        await second.close()
    old = await call_record(env, first.call_id)
    assert old["end_reason"] == "session_continued"
