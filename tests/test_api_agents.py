"""Agents, widgets, data collection and media handlers: success shapes and the seed's error codes."""
from __future__ import annotations

import copy

from test_api_fixtures import (  # noqa: F401  (fixtures)
    LOCAL_MODEL,
    LOCAL_TRANSCRIPTION,
    LOCAL_VOICE,
    Api,
    api,
    settings,
)

# The seed's `curl` bodies, verbatim except for the cloud model/voice/transcription.
SEED_AGENT_CREATE = {
    "name": "Support Bot",
    "welcome_message": "Hey! How can I help you?",
    "agent_prompt": "<agent_prompt>",
    "language": "en-US",
    "model": {"provider": "AZURE", "model": "gpt-4.1-mini"},
    "voice": {"provider": "ELEVENLABS", "name": "Riya Rao"},
    "transcription": {"provider": "DEEPGRAM", "model": "nova-2"},
    "data_collection": {"call_cut": [], "required_values": {}},
    "duty": "support",
    "enable_lid_detection": True,
    "lid_allowed_languages": ["hi", "en"],
    "active": False,
}
SEED_AGENT_UPDATE = {
    "name": "<name>",
    "agent_prompt": "<agent_prompt>",
    "welcome_message": "<welcome_message>",
    "language": "<language>",
    "model": {"provider": "AZURE_REALTIME", "model": "gpt-4o-mini-realtime-preview"},
    "voice": {"provider": "ELEVENLABS", "name": "Miranda English Voice US"},
    "transcription": {"provider": "SARVAM", "model": "saaras:v3"},
    "temperature": None,
    "speed": None,
    "enable_lid_detection": False,
    "lid_allowed_languages": "<lid_allowed_languages>",
    "active": False,
}
SEED_DATA_COLLECTION = {
    "key": "interested_in_demo",
    "prompt": "Did the user express interest in a demo? Answer yes or no.",
    "data_type": "enum",
    "enum_values": ["Interested", "Not Interested", "Call Back Later"],
    "store_to_prospect": False,
    "prospect_column_name": "<prospect_column_name>",
    "store_to_prospect_data": False,
    "prospect_data_key": "<prospect_data_key>",
    "store_directly_to_prospect": False,
    "is_active": False,
}


def localised(body: dict) -> dict:
    body = copy.deepcopy(body)
    body.update(model=dict(LOCAL_MODEL), voice=dict(LOCAL_VOICE), transcription=dict(LOCAL_TRANSCRIPTION))
    return body


async def test_seed_agent_create_update_delete(api: Api):
    created = await api.ok("POST", "/assistant", json=localised(SEED_AGENT_CREATE))
    assert set(created) == {"id", "name", "client_id", "created_at"}
    assert created["name"] == "Support Bot" and created["created_at"].endswith("Z")
    agent_id = created["id"]

    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert detail["model"] == LOCAL_MODEL and detail["voice"] == LOCAL_VOICE
    assert detail["transcription"] == LOCAL_TRANSCRIPTION
    assert detail["lid_allowed_languages"] == ["hi", "en"] and detail["enable_lid_detection"] is True
    assert detail["active"] is False and detail["duty"] == "support"
    assert detail["data_collection"] == {"call_cut": [], "required_values": {}}
    assert detail["client_id"] == created["client_id"]

    listed = await api.ok("GET", "/assistant")
    assert set(listed) == {"agents"}
    summary = next(a for a in listed["agents"] if a["id"] == agent_id)
    assert "agent_prompt" not in summary and summary["language"] == "en-US"

    await api.ok("PATCH", f"/assistant/{agent_id}", json={"temperature": 0.7, "speed": 1.5})
    updated = await api.ok("PATCH", f"/assistant/{agent_id}", json=localised(SEED_AGENT_UPDATE))
    assert set(updated) == {"id", "name", "active", "updated_at"}
    assert updated == {**updated, "id": agent_id, "name": "<name>", "active": False}
    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert detail["temperature"] is None and detail["speed"] is None  # null resets
    assert detail["lid_allowed_languages"] == ["<lid_allowed_languages>"]
    assert detail["language"] == "<language>" and detail["welcome_message"] == "<welcome_message>"

    deleted = await api.ok("DELETE", f"/assistant/{agent_id}")
    assert deleted == {"id": agent_id, "name": "<name>"}
    await api.error("GET", f"/assistant/{agent_id}", 404, "AGENT_NOT_FOUND")
    await api.error("DELETE", f"/assistant/{agent_id}", 404, "AGENT_NOT_FOUND")


async def test_agent_defaults_come_from_the_catalog(api: Api):
    agent_id = await api.agent()
    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert detail["model"] == LOCAL_MODEL and detail["voice"] == LOCAL_VOICE
    assert detail["transcription"] == LOCAL_TRANSCRIPTION
    # a PATCH that leaves them out keeps them; one that names another catalog entry switches
    await api.ok("PATCH", f"/assistant/{agent_id}", json={"voice": {"provider": "ESPEAK", "name": "en-us"}})
    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert detail["voice"] == {"provider": "ESPEAK", "name": "en-us"} and detail["model"] == LOCAL_MODEL


async def test_agent_validation_errors(api: Api):
    message = await api.error("POST", "/assistant", 422, "VALIDATION_ERROR", json=SEED_AGENT_CREATE)
    assert "model" in message and "/discovery/models" in message
    body = localised(SEED_AGENT_CREATE)
    body["voice"] = {"provider": "PIPER", "name": "nobody"}
    assert "voice" in await api.error("POST", "/assistant", 422, "VALIDATION_ERROR", json=body)
    body = localised(SEED_AGENT_CREATE)
    body["transcription"] = {"provider": "DEEPGRAM", "model": "nova-2"}
    assert "transcription" in await api.error("POST", "/assistant", 422, "VALIDATION_ERROR", json=body)
    for field, value in (("temperature", 2.5), ("speed", 0.1), ("speed", 5)):
        message = await api.error("POST", "/assistant", 422, "VALIDATION_ERROR",
                                  json={**localised(SEED_AGENT_CREATE), field: value})
        assert message.startswith(field)
    assert "name" in await api.error("POST", "/assistant", 422, "VALIDATION_ERROR",
                                     json={"welcome_message": "x", "agent_prompt": "y"})
    await api.error("POST", "/assistant", 400, "BAD_REQUEST", content=b"{not json")

    agent_id = await api.agent()
    await api.error("PATCH", f"/assistant/{agent_id}", 422, "VALIDATION_ERROR",
                    json={"model": {"provider": "AZURE", "model": "gpt-4.1-mini"}})
    await api.error("PATCH", f"/assistant/{agent_id}", 422, "VALIDATION_ERROR", json={"temperature": -1})
    for method in ("GET", "PATCH", "DELETE"):
        await api.error(method, "/assistant/not-a-uuid", 422, "VALIDATION_ERROR", json={})
        await api.error(method, "/assistant/0b5d0c55-6f3e-4b8e-9a55-000000000000", 404, "AGENT_NOT_FOUND", json={})


async def test_agent_auth_errors(api: Api):
    await api.error("GET", "/assistant", 401, "UNAUTHORIZED", key=None)
    await api.error("GET", "/assistant", 401, "INVALID_API_KEY", key="sk_live_nonsense")
    await api.error("POST", "/assistant", 403, "INSUFFICIENT_SCOPE", key=api.publishable, json=SEED_AGENT_CREATE)
    response = await api.http.get("/assistant", headers={"Authorization": f"Bearer {api.secret}"})
    assert response.status_code == 200


async def test_widget(api: Api):
    agent_id = await api.agent()
    widget = await api.ok("GET", f"/assistant/{agent_id}/widget")
    assert widget["agent_id"] == agent_id and widget["mode"] == "voice_only"
    assert widget["primary_color"] == "#6366f1" and widget["secondary_color"] == "#a855f7"
    assert await api.ok("GET", f"/assistant/{agent_id}/widget") == widget  # stable

    updated = await api.ok("PATCH", f"/assistant/widget/{widget['id']}",
                           json={"mode": "chat_voice", "primary_color": "#ff0000", "icon": "mic"})
    assert set(updated) >= {"id", "mode", "primary_color", "updated_at"}
    assert updated["mode"] == "chat_voice" and updated["primary_color"] == "#ff0000"
    assert (await api.ok("GET", f"/assistant/{agent_id}/widget"))["icon"] == "mic"

    await api.error("PATCH", f"/assistant/widget/{widget['id']}", 422, "VALIDATION_ERROR", json={"mode": "<mode>"})
    await api.error("PATCH", f"/assistant/widget/{widget['id']}", 422, "VALIDATION_ERROR",
                    json={"primary_color": "red"})
    await api.error("PATCH", "/assistant/widget/6d1f8a52-0000-4000-8000-000000000000", 404, "WIDGET_NOT_FOUND",
                    json={"mode": "chat_only"})
    await api.error("GET", "/assistant/6d1f8a52-0000-4000-8000-000000000000/widget", 404, "AGENT_NOT_FOUND")


async def test_data_collection(api: Api):
    agent_id = await api.agent()
    created = await api.ok("POST", f"/assistant/{agent_id}/data-collection", json=SEED_DATA_COLLECTION)
    assert set(created) == {"id", "key", "prompt", "data_type", "agent_id", "created_at"}
    assert created["key"] == "interested_in_demo" and created["data_type"] == "enum"
    listed = await api.ok("GET", f"/assistant/{agent_id}/data-collection")
    assert [c["id"] for c in listed["collections"]] == [created["id"]]
    item = listed["collections"][0]
    assert item["enum_values"] == SEED_DATA_COLLECTION["enum_values"] and item["is_active"] is False

    await api.error("POST", f"/assistant/{agent_id}/data-collection", 409, "CONFLICT", json=SEED_DATA_COLLECTION)
    await api.error("POST", f"/assistant/{agent_id}/data-collection", 400, "BAD_REQUEST",
                    json={"key": "choice", "prompt": "Which?", "data_type": "enum"})
    await api.error("POST", f"/assistant/{agent_id}/data-collection", 422, "VALIDATION_ERROR",
                    json={"key": "x", "prompt": "y", "data_type": "timestamp"})
    await api.error("POST", "/assistant/6d1f8a52-0000-4000-8000-000000000000/data-collection", 404,
                    "AGENT_NOT_FOUND", json=SEED_DATA_COLLECTION)

    updated = await api.ok("PATCH", f"/assistant/data-collection/{created['id']}",
                           json={"prompt": "Interested?", "is_active": True})
    assert set(updated) == {"id", "key", "is_active", "updated_at"} and updated["is_active"] is True
    await api.error("PATCH", f"/assistant/data-collection/{created['id']}", 400, "BAD_REQUEST",
                    json={"enum_values": None})
    removed = await api.ok("DELETE", f"/assistant/data-collection/{created['id']}")
    assert removed == {"success": True, "id": created["id"]}
    for method in ("PATCH", "DELETE"):
        await api.error(method, f"/assistant/data-collection/{created['id']}", 404, "DATA_COLLECTION_NOT_FOUND",
                        json={"is_active": True})


async def test_media_handlers(api: Api):
    agent_id = await api.agent()
    body = {"reason": "kyc_photo", "route": "webhook", "webhook_url": "https://api.acme.com/kyc",
            "webhook_headers": {"X-Key": "abc"}, "inject_as": "system", "interrupt": True}
    created = await api.ok("POST", f"/assistant/{agent_id}/media-handlers", json=body)
    assert set(created) == {"id", "reason", "route", "inject_as", "interrupt"}
    listed = await api.ok("GET", f"/assistant/{agent_id}/media-handlers")
    assert [h["id"] for h in listed["handlers"]] == [created["id"]]
    assert listed["handlers"][0]["webhook_url"] == "https://api.acme.com/kyc"
    assert "webhook_headers" not in listed["handlers"][0]  # may hold secrets

    await api.error("POST", f"/assistant/{agent_id}/media-handlers", 400, "BAD_REQUEST",
                    json={**body, "webhook_url": None})
    await api.error("POST", f"/assistant/{agent_id}/media-handlers", 422, "VALIDATION_ERROR",
                    json={**body, "webhook_headers": "<webhook_headers>"})
    await api.error("POST", f"/assistant/{agent_id}/media-handlers", 422, "VALIDATION_ERROR",
                    json={**body, "route": "email"})
    vision = await api.ok("POST", f"/assistant/{agent_id}/media-handlers",
                          json={"reason": "receipt", "route": "vision", "inject_as": "user", "interrupt": False})
    assert vision["route"] == "vision"

    updated = await api.ok("PATCH", f"/assistant/media-handlers/{created['id']}", json={"reason": "updated_kyc_photo"})
    assert set(updated) == {"id", "reason", "updated_at"} and updated["reason"] == "updated_kyc_photo"
    await api.error("PATCH", f"/assistant/media-handlers/{vision['id']}", 400, "BAD_REQUEST",
                    json={"route": "webhook"})
    assert await api.ok("DELETE", f"/assistant/media-handlers/{created['id']}") == {"success": True}
    for method in ("PATCH", "DELETE"):
        await api.error(method, f"/assistant/media-handlers/{created['id']}", 404, "MEDIA_HANDLER_NOT_FOUND",
                        json={"interrupt": True})
    await api.error("GET", "/assistant/6d1f8a52-0000-4000-8000-000000000000/media-handlers", 404, "AGENT_NOT_FOUND")


async def test_deleting_an_agent_removes_its_children(api: Api):
    agent_id = await api.agent()
    dc = await api.ok("POST", f"/assistant/{agent_id}/data-collection", json={"key": "email", "prompt": "Email?"})
    await api.number("+918071387205", agent_id)
    call_id = await api.web_call(agent_id)
    await api.ok("DELETE", f"/assistant/{agent_id}")
    await api.error("PATCH", f"/assistant/data-collection/{dc['id']}", 404, "DATA_COLLECTION_NOT_FOUND",
                    json={"is_active": False})
    assert (await api.ok("GET", f"/calls/{call_id}"))["agent_id"] == agent_id  # calls outlive their agent
    numbers = (await api.ok("GET", "/phone-numbers"))["numbers"]
    assert [(n["number"], n["agent_id"]) for n in numbers] == [("+918071387205", None)]


async def test_a_database_failure_is_database_error_without_details(api: Api):
    from sqlalchemy import text

    agent_id = await api.agent()
    before = await api.ok("GET", "/assistant")
    async with api.app.state.runtime.db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE widgets"))
    message = await api.error("GET", f"/assistant/{agent_id}/widget", 500, "DATABASE_ERROR")
    assert "widgets" not in message and "SELECT" not in message
    # creating an agent also creates its widget: the failure rolls the whole create back
    await api.error("POST", "/assistant", 500, "PERSISTENCE_ERROR",
                    json={"name": "Half", "welcome_message": "", "agent_prompt": ""})
    assert await api.ok("GET", "/assistant") == before
