"""Data survives a restart: objects created through a real server are all there after it stops and a new one
starts on the same data directory (and the same database, on PostgreSQL)."""
from __future__ import annotations

import httpx

from test_api_fixtures import settings  # noqa: F401  (fixture)

READ_BACK = ("/assistant", "/tools", "/phone-numbers", "/sip-trunks", "/campaigns", "/calls", "/leads")


def _ok(http: httpx.Client, method: str, path: str, **kwargs) -> dict:
    response = http.request(method, path, **kwargs)
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def test_objects_survive_a_restart(settings, live_server_factory):
    settings = settings.model_copy(update={"public_url": None})  # the live server's own address
    headers = {"X-API-Key": settings.secret_key}
    with live_server_factory(settings) as server, httpx.Client(base_url=server.base_url, headers=headers,
                                                               timeout=30) as http:
        agent = _ok(http, "POST", "/assistant", json={"name": "Keeper", "welcome_message": "Hello",
                                                      "agent_prompt": "Be kind.", "temperature": 0.4})["id"]
        _ok(http, "POST", f"/assistant/{agent}/data-collection", json={"key": "email", "prompt": "Email?"})
        _ok(http, "POST", f"/assistant/{agent}/media-handlers",
            json={"reason": "id", "route": "vision", "inject_as": "system", "interrupt": True})
        widget = _ok(http, "GET", f"/assistant/{agent}/widget")
        _ok(http, "PATCH", f"/assistant/widget/{widget['id']}", json={"primary_color": "#123456"})
        tool = _ok(http, "POST", "/tools", json={
            "name": "lookup", "description": "Look up an order", "type": "server",
            "parameters": [{"name": "order_id", "type": "string", "required": True}],
            "server": {"url": "https://example.com/orders/{{order_id}}", "method": "GET"}})
        _ok(http, "POST", f"/assistant/{agent}/tools", json={"tool_id": tool["id"]})
        _ok(http, "POST", "/phone-numbers/import", json={
            "phone_number": "+918071387205", "agent_id": agent,
            "trunk": {"host": "sip.example.net", "username": "acme", "password": "pw"}})
        campaign = _ok(http, "POST", "/campaigns", json={
            "name": "Renewals", "agent_id": agent, "candidates": [{"name": "Ann", "phone": "+14155550100"}],
            "from_numbers": ["+918071387205"], "start_campaign": True})["campaign_id"]
        _ok(http, "POST", f"/campaigns/{campaign}/pause")
        _ok(http, "POST", "/calls/create", json={"agent_id": agent, "type": "web"})
        details = (f"/assistant/{agent}", f"/assistant/{agent}/tools", f"/assistant/{agent}/data-collection",
                   f"/assistant/{agent}/media-handlers", f"/assistant/{agent}/widget", f"/campaigns/{campaign}")
        before = {path: _ok(http, "GET", path) for path in READ_BACK + details}

    with live_server_factory(settings) as server, httpx.Client(base_url=server.base_url, headers=headers,
                                                               timeout=30) as http:
        after = {path: _ok(http, "GET", path) for path in before}

    assert after == before
    assert before[f"/campaigns/{campaign}"]["status"] == "paused"
    assert before[f"/assistant/{agent}"]["temperature"] == 0.4
    assert before[f"/assistant/{agent}/widget"]["primary_color"] == "#123456"
    assert len(before["/calls"]["calls"]) == 1 and before["/phone-numbers"]["numbers"][0]["agent_id"] == agent
