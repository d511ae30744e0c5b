"""Tools and their attachment to agents: the seed's bodies, defaults, validation, error codes."""
from __future__ import annotations

import asyncio
import copy

from presets.catalog import seed_bodies
from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

SEED_SERVER_TOOL = {
    "name": "check_order_status",
    "description": "Check the status of a customer order by order ID",
    "ref_code": "check_order_status",
    "type": "server",
    "execution_mode": "blocking",
    "channels": ["voice_web", "voice_telephony"],
    "parameters": [{"name": "order_id", "type": "string", "description": "Order ID to check", "required": True}],
    "server": {"url": "https://api.acme.com/orders", "method": "POST"},
    "request": {"body": {"order_id": "{{order_id}}", "source": "vanira"}, "headers": {"X-API-Key": "sk-abc"},
                "query": {}},
    "client_fields": {"name": "{{customer_name}}", "source": "website"},
}
SEED_CUSTOM_CLIENT_TOOL = {
    "name": "say_hi",
    "description": "Show a greeting popup when the user says hello",
    "ref_code": "say_hi",
    "type": "client",
    "execution_mode": "fire_and_forget",
    "channels": ["voice_web"],
    "parameters": [],
    "client_fields": {},
}
TOOL_FIELDS = {"id", "name", "description", "ref_code", "type", "execution_mode", "channels", "parameters", "server",
               "request", "client_fields", "timeout_seconds", "created_at", "updated_at"}
MISSING = "6d1f8a52-0000-4000-8000-000000000000"


async def test_seed_server_tool(api: Api):
    tool = await api.ok("POST", "/tools", json=SEED_SERVER_TOOL)
    assert set(tool) == TOOL_FIELDS
    assert tool["type"] == "server" and tool["execution_mode"] == "blocking"
    assert tool["server"] == {"url": "https://api.acme.com/orders", "method": "POST"}
    assert tool["request"]["body"] == {"order_id": "{{order_id}}", "source": "vanira"}
    assert tool["request"]["headers"] == {"X-API-Key": "sk-abc"}
    assert tool["parameters"][0]["name"] == "order_id" and tool["parameters"][0]["required"] is True
    assert tool["client_fields"] is None  # client_fields belong to client tools
    assert await api.ok("GET", f"/tools/{tool['id']}") == tool


async def test_seed_custom_client_tool_and_every_preset_body(api: Api):
    existing = (await api.ok("GET", "/tools"))["total"]  # the demo agent's tools
    tool = await api.ok("POST", "/tools", json=SEED_CUSTOM_CLIENT_TOOL)
    assert tool["type"] == "client" and tool["execution_mode"] == "fire_and_forget"
    assert tool["channels"] == ["voice_web"] and tool["client_fields"] == {} and tool["server"] is None

    bodies = seed_bodies()
    for key, body in bodies.items():
        created = await api.ok("POST", "/tools", json=body)
        assert created["name"] == body["name"], key
        assert created["type"] == body["type"], key
        if "preset_id" in (body.get("client_fields") or {}):
            assert created["client_fields"] == body["client_fields"], key  # unknown {{date}} passes through
    calendar = next(t for t in (await api.ok("GET", "/tools"))["tools"] if t["name"] == "display_booking_calendar")
    assert "{{date}}" in calendar["client_fields"]["slots_api_url"]
    listed = await api.ok("GET", "/tools")
    assert listed["total"] == existing + len(bodies) + 1 == len(listed["tools"])


async def test_tool_defaults(api: Api):
    client = await api.ok("POST", "/tools", json={"name": "Show Map", "description": "Show a map", "type": "client"})
    assert client["execution_mode"] == "fire_and_forget" and client["ref_code"] == "show_map"
    assert client["channels"] == ["voice_web", "voice_telephony"] and client["parameters"] == []
    server = await api.ok("POST", "/tools", json={"name": "ping", "description": "Ping", "type": "server",
                                                  "server": {"url": "https://example.com/ping"}})
    assert server["execution_mode"] == "blocking" and server["server"]["method"] == "POST"
    assert server["timeout_seconds"] is None
    slow = await api.ok("PATCH", f"/tools/{server['id']}", json={"timeout_seconds": 30})
    assert slow["timeout_seconds"] == 30.0 and slow["server"] == server["server"]


async def test_tool_validation_errors(api: Api):
    async def invalid(body: dict, field: str) -> None:
        message = await api.error("POST", "/tools", 422, "VALIDATION_ERROR", json=body)
        assert message.startswith(field), message

    no_url = copy.deepcopy(SEED_SERVER_TOOL)
    del no_url["server"]
    await invalid(no_url, "server.url")
    stray = copy.deepcopy(SEED_SERVER_TOOL)
    stray["request"]["body"]["customer"] = "{{customer_name}}"
    await invalid(stray, "request.body")
    await invalid({**SEED_SERVER_TOOL, "type": "webhook"}, "type")
    await invalid({**SEED_SERVER_TOOL, "execution_mode": "sometimes"}, "execution_mode")
    await invalid({**SEED_SERVER_TOOL, "channels": ["fax"]}, "channels")
    await invalid({"description": "x", "type": "client"}, "name")
    await invalid({**SEED_CUSTOM_CLIENT_TOOL, "client_fields": {"preset_id": "vanira_nothing"}},
                  "client_fields.preset_id")
    await invalid({**SEED_CUSTOM_CLIENT_TOOL, "parameters": [{"name": "a b"}]}, "parameters")
    await invalid({**SEED_CUSTOM_CLIENT_TOOL, "timeout_seconds": 0}, "timeout_seconds")
    await api.error("POST", "/tools", 401, "UNAUTHORIZED", key=None, json=SEED_SERVER_TOOL)


async def test_tool_read_update_delete(api: Api):
    tool = await api.ok("POST", "/tools", json=SEED_SERVER_TOOL)
    renamed = await api.ok("PATCH", f"/tools/{tool['id']}",
                           json={"name": "order_status", "request": {"body": {"id": "{{order_id}}"}}})
    assert renamed["name"] == "order_status" and renamed["ref_code"] == "check_order_status"
    assert renamed["parameters"] == tool["parameters"]  # kept unless re-sent
    assert renamed["request"]["body"] == {"id": "{{order_id}}"} and renamed["request"]["headers"] == {}
    params = await api.ok("PATCH", f"/tools/{tool['id']}", json={
        "parameters": [{"name": "order_id", "type": "string", "description": "Order ID", "required": True},
                       {"name": "email", "type": "string"}]})
    assert [p["name"] for p in params["parameters"]] == ["order_id", "email"]
    message = await api.error("PATCH", f"/tools/{tool['id']}", 422, "VALIDATION_ERROR",
                              json={"parameters": [{"name": "email", "type": "string"}]})
    assert message.startswith("request.body")  # {{order_id}} would name no parameter any more
    await api.error("PATCH", f"/tools/{tool['id']}", 422, "VALIDATION_ERROR", json={"server": "<server>"})

    assert await api.ok("DELETE", f"/tools/{tool['id']}") == {"success": True, "id": tool["id"]}
    for method in ("GET", "PATCH", "DELETE"):
        await api.error(method, f"/tools/{tool['id']}", 404, "TOOL_NOT_FOUND", json={"name": "x"})
    await api.error("GET", "/tools/not-a-uuid", 404, "TOOL_NOT_FOUND")


async def test_attach_list_detach(api: Api):
    agent_id = await api.agent()
    tool = await api.tool(parameters=[{"name": "location_query", "type": "string", "required": True}],
                          client_fields={"query": "{{location_query}}"})
    attached = await api.ok("POST", f"/assistant/{agent_id}/tools", json={"tool_id": tool["id"]})
    assert set(attached) == {"id", "is_active"} and attached["is_active"] is True
    again = await api.ok("POST", f"/assistant/{agent_id}/tools", json={"tool_id": tool["id"]})
    assert again == attached  # attaching twice keeps one attachment
    second = await api.tool(name="say_bye")
    racing = await asyncio.gather(*(api.ok("POST", f"/assistant/{agent_id}/tools", json={"tool_id": second["id"]})
                                    for _ in range(4)))
    assert len({r["id"] for r in racing}) == 1  # concurrent attaches agree on one attachment
    await api.ok("DELETE", f"/assistant/{agent_id}/tools/{racing[0]['id']}")

    listed = await api.ok("GET", f"/assistant/{agent_id}/tools")
    assert listed["total"] == 1
    item = listed["tools"][0]
    assert item["id"] == attached["id"] and item["tool_id"] == tool["id"] and item["is_active"] is True
    assert item["client_fields"] == {"query": "{{location_query}}"} and item["name"] == "say_hi"

    await api.error("DELETE", f"/assistant/{agent_id}/tools/{tool['id']}", 404, "TOOL_NOT_FOUND")  # not the join id
    detached = await api.ok("DELETE", f"/assistant/{agent_id}/tools/{attached['id']}")
    assert detached == {"success": True, "id": attached["id"]}
    assert (await api.ok("GET", f"/assistant/{agent_id}/tools")) == {"tools": [], "total": 0}

    await api.error("POST", f"/assistant/{agent_id}/tools", 404, "TOOL_NOT_FOUND", json={"tool_id": MISSING})
    await api.error("POST", f"/assistant/{MISSING}/tools", 404, "AGENT_NOT_FOUND", json={"tool_id": tool["id"]})
    await api.error("GET", f"/assistant/{MISSING}/tools", 404, "AGENT_NOT_FOUND")
    await api.error("POST", f"/assistant/{agent_id}/tools", 422, "VALIDATION_ERROR", json={})

    # deleting a tool detaches it everywhere
    await api.ok("POST", f"/assistant/{agent_id}/tools", json={"tool_id": tool["id"]})
    await api.ok("DELETE", f"/tools/{tool['id']}")
    assert (await api.ok("GET", f"/assistant/{agent_id}/tools"))["total"] == 0
