"""Tenant isolation: every declared operation, called with a second client's keys on the first client's objects,
answers 404 (or 401/403 for scope) and never the first client's data; the first client's objects stay as they were.

The walk is driven by the app's own route table, so a new route without an entry here fails the test.
"""
from __future__ import annotations

import json

from control_api.openapi import operations
from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

NUMBER = "+918071387205"
# operations without path ids whose body names the first client's objects
AIMED_BY_BODY = {("POST", "/calls/create"), ("POST", "/phone-numbers/import"), ("PUT", "/phone-numbers/link"),
                 ("POST", "/campaigns")}


async def owned_objects(api: Api) -> dict[str, str]:
    """One of everything, owned by the default client."""
    agent = await api.agent(name="Secret Agent")
    widget = await api.ok("GET", f"/assistant/{agent}/widget")
    collection = await api.ok("POST", f"/assistant/{agent}/data-collection", json={"key": "email", "prompt": "Email?"})
    handler = await api.ok("POST", f"/assistant/{agent}/media-handlers",
                           json={"reason": "kyc", "route": "vision", "inject_as": "system", "interrupt": False})
    tool = await api.tool()
    link = await api.ok("POST", f"/assistant/{agent}/tools", json={"tool_id": tool["id"]})
    imported = await api.number(NUMBER, agent)
    call = await api.web_call(agent)
    lead = (await api.ok("GET", f"/calls/{call}"))["prospect"]["id"]
    campaign = (await api.ok("POST", "/campaigns", json={
        "name": "Outreach", "agent_id": agent, "candidates": [{"name": "Ann", "phone": "+14155550100"}],
        "from_numbers": [NUMBER]}))["campaign_id"]
    client = (await api.ok("GET", f"/assistant/{agent}"))["client_id"]
    return {"client": client, "agent": agent, "widget": widget["id"], "collection": collection["id"],
            "handler": handler["id"],
            "tool": tool["id"], "link": link["id"], "trunk": imported["outbound_trunk_id"], "call": call,
            "lead": lead, "campaign": campaign}


def requests_for(ids: dict[str, str]) -> dict[tuple[str, str], tuple[str, dict | None]]:
    """(method, path template) -> (concrete path, JSON body) aimed at the first client's objects."""
    a, c = ids["agent"], ids["campaign"]
    return {
        ("GET", "/assistant"): ("/assistant", None),
        ("POST", "/assistant"): ("/assistant", {"name": "B", "welcome_message": "", "agent_prompt": ""}),
        ("GET", "/assistant/{id}"): (f"/assistant/{a}", None),
        ("PATCH", "/assistant/{id}"): (f"/assistant/{a}", {"name": "taken"}),
        ("DELETE", "/assistant/{id}"): (f"/assistant/{a}", None),
        ("GET", "/assistant/{id}/widget"): (f"/assistant/{a}/widget", None),
        ("PATCH", "/assistant/widget/{widget_id}"): (f"/assistant/widget/{ids['widget']}", {"mode": "chat_only"}),
        ("GET", "/assistant/{id}/data-collection"): (f"/assistant/{a}/data-collection", None),
        ("POST", "/assistant/{id}/data-collection"): (f"/assistant/{a}/data-collection", {"key": "k", "prompt": "p"}),
        ("PATCH", "/assistant/data-collection/{collection_id}"):
            (f"/assistant/data-collection/{ids['collection']}", {"is_active": False}),
        ("DELETE", "/assistant/data-collection/{collection_id}"):
            (f"/assistant/data-collection/{ids['collection']}", None),
        ("GET", "/assistant/{id}/media-handlers"): (f"/assistant/{a}/media-handlers", None),
        ("POST", "/assistant/{id}/media-handlers"): (f"/assistant/{a}/media-handlers", {
            "reason": "x", "route": "vision", "inject_as": "user", "interrupt": True}),
        ("PATCH", "/assistant/media-handlers/{id}"): (f"/assistant/media-handlers/{ids['handler']}", {"reason": "y"}),
        ("DELETE", "/assistant/media-handlers/{id}"): (f"/assistant/media-handlers/{ids['handler']}", None),
        ("GET", "/tools"): ("/tools", None),
        ("POST", "/tools"): ("/tools", {"name": "b_tool", "description": "B's", "type": "client"}),
        ("GET", "/tools/{id}"): (f"/tools/{ids['tool']}", None),
        ("PATCH", "/tools/{id}"): (f"/tools/{ids['tool']}", {"name": "taken"}),
        ("DELETE", "/tools/{id}"): (f"/tools/{ids['tool']}", None),
        ("GET", "/assistant/{id}/tools"): (f"/assistant/{a}/tools", None),
        ("POST", "/assistant/{id}/tools"): (f"/assistant/{a}/tools", {"tool_id": ids["tool"]}),
        ("DELETE", "/assistant/{id}/tools/{agent_tool_id}"): (f"/assistant/{a}/tools/{ids['link']}", None),
        ("POST", "/calls/create"): ("/calls/create", {"agent_id": a, "type": "web", "prospect_id": ids["lead"],
                                                      "call_id": ids["call"]}),
        ("GET", "/calls"): (f"/calls?agent_id={a}", None),
        ("GET", "/calls/{id}"): (f"/calls/{ids['call']}", None),
        ("GET", "/calls/{id}/recording"): (f"/calls/{ids['call']}/recording", None),
        ("POST", "/calls/{id}/end"): (f"/calls/{ids['call']}/end", None),
        ("GET", "/discovery/models"): ("/discovery/models", None),
        ("GET", "/discovery/voices"): ("/discovery/voices", None),
        ("GET", "/discovery/transcription-models"): ("/discovery/transcription-models", None),
        ("GET", "/discovery/ice-servers"): ("/discovery/ice-servers", None),
        ("GET", "/phone-numbers"): ("/phone-numbers", None),
        ("POST", "/phone-numbers/import"): ("/phone-numbers/import", {
            "phone_number": "+918071387206", "agent_id": a, "trunk_id": ids["trunk"]}),
        ("PUT", "/phone-numbers/link"): ("/phone-numbers/link", {"phone_number": NUMBER, "agent_id": a}),
        ("DELETE", "/phone-numbers/{number}"): ("/phone-numbers/%2B918071387205", None),
        ("GET", "/sip-trunks"): ("/sip-trunks", None),
        ("POST", "/sip-trunks"): ("/sip-trunks", {"host": "sip.b.example"}),
        ("GET", "/sip-trunks/{id}"): (f"/sip-trunks/{ids['trunk']}", None),
        ("PATCH", "/sip-trunks/{id}"): (f"/sip-trunks/{ids['trunk']}", {"host": "evil.example"}),
        ("DELETE", "/sip-trunks/{id}"): (f"/sip-trunks/{ids['trunk']}", None),
        ("POST", "/campaigns"): ("/campaigns", {"name": "B", "agent_id": a, "use_vanira_managed": True,
                                                "candidates": [{"phone": "+14155550199"}]}),
        ("GET", "/campaigns"): ("/campaigns", None),
        ("GET", "/campaigns/{id}"): (f"/campaigns/{c}", None),
        ("GET", "/campaigns/{id}/prospects"): (f"/campaigns/{c}/prospects", None),
        ("PATCH", "/campaigns/{id}"): (f"/campaigns/{c}", {"name": "taken"}),
        ("POST", "/campaigns/{id}/start"): (f"/campaigns/{c}/start", None),
        ("POST", "/campaigns/{id}/pause"): (f"/campaigns/{c}/pause", None),
        ("POST", "/campaigns/{id}/resume"): (f"/campaigns/{c}/resume", None),
        ("POST", "/campaigns/{id}/schedule-start"): (f"/campaigns/{c}/schedule-start",
                                                     {"scheduled_start_time": "2099-01-01T00:00:00Z"}),
        ("GET", "/leads"): ("/leads", None),
        ("GET", "/leads/{id}"): (f"/leads/{ids['lead']}", None),
    }


async def test_a_second_client_never_sees_or_touches_the_firsts_objects(api: Api):
    ids = await owned_objects(api)
    before = {path: await api.ok("GET", path) for path in (
        f"/assistant/{ids['agent']}", f"/assistant/{ids['agent']}/tools", f"/tools/{ids['tool']}",
        f"/campaigns/{ids['campaign']}", "/phone-numbers", f"/sip-trunks/{ids['trunk']}",
        f"/assistant/{ids['agent']}/data-collection", f"/assistant/{ids['agent']}/media-handlers")}
    table = requests_for(ids)
    declared = {(op.method, op.path): op for op in operations(api.app.routes)}
    assert set(declared) == set(table), "every declared operation needs an entry in requests_for()"

    secrets = set(ids.values()) | {NUMBER}
    for (method, template), (path, body) in table.items():
        op = declared[(method, template)]
        response = await api.call(method, path, key=api.other, json=body)
        text = response.text
        leaked = [value for value in secrets if value in text]
        assert not leaked, f"{method} {path} leaked {leaked}: {text}"
        if "{" in template or (method, template) in AIMED_BY_BODY:
            assert response.status_code == 404, f"{method} {path}: {response.status_code} {text}"
            assert response.json()["error"]["code"].endswith("_NOT_FOUND")
        else:
            assert response.status_code == 200, f"{method} {path}: {response.status_code} {text}"

        # the second client's publishable key: scope first, then the same 404s
        response = await api.call(method, path, key=api.other_publishable, json=body)
        assert not [value for value in secrets if value in response.text]
        if op.auth == "secret":
            assert response.status_code == 403 and response.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
        else:
            assert response.status_code in (200, 404), f"{method} {path}: {response.status_code}"

    after = {path: await api.ok("GET", path) for path in before}
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


async def test_every_operation_needs_a_valid_key(api: Api):
    ids = await owned_objects(api)
    for (method, template), (path, body) in requests_for(ids).items():
        for key, code in ((None, "UNAUTHORIZED"), ("sk_live_not-a-key", "INVALID_API_KEY"),
                          ("pk_live_not-a-key", "INVALID_API_KEY")):
            await api.error(method, path, 401, code, key=key, json=body)
        bearer = await api.http.request(method, path, json=body, headers={"Authorization": "Bearer sk_live_x"})
        assert bearer.status_code == 401 and bearer.json()["error"]["code"] == "INVALID_API_KEY"
