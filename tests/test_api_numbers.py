"""Phone numbers, SIP trunks and discovery: shapes, E.164 validation and error codes."""
from __future__ import annotations

import uuid

from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

MISSING = "6d1f8a52-0000-4000-8000-000000000000"


async def test_import_list_link_delete(api: Api):
    agent_id = await api.agent()
    imported = await api.number("+918071387205", agent_id, credential_label="primary")
    assert set(imported) == {"phone_number", "agent_id", "trunk_endpoint", "outbound_trunk_id", "assigned",
                             "service_reloaded"}
    assert imported["phone_number"] == "+918071387205" and imported["agent_id"] == agent_id
    assert imported["trunk_endpoint"] == "sip:sip.example.net:5060;transport=udp" and imported["assigned"] is True

    numbers = (await api.ok("GET", "/phone-numbers"))["numbers"]
    assert len(numbers) == 1
    number = numbers[0]
    assert set(number) == {"id", "number", "country_code", "label", "client_id", "trunk_id", "is_active",
                           "is_vanira_internal", "agent_id"}
    assert number["country_code"] == "IN" and number["label"] == "primary"
    assert number["trunk_id"] == imported["outbound_trunk_id"] and number["is_vanira_internal"] is False

    trunk = await api.ok("GET", f"/sip-trunks/{imported['outbound_trunk_id']}")
    assert trunk["name"] == "primary" and trunk["has_password"] is True and "password" not in trunk

    # a second number on the stored trunk, by id and by "use existing credentials"
    second = await api.number("+14155550100", agent_id, trunk=None, trunk_id=trunk["id"])
    assert second["outbound_trunk_id"] == trunk["id"]
    third = await api.number("44 20 7946 0000", agent_id, trunk=None, use_existing_credentials=True)
    assert third["phone_number"] == "+442079460000"
    by_number = {n["number"]: n for n in (await api.ok("GET", "/phone-numbers"))["numbers"]}
    assert by_number["+14155550100"]["country_code"] == "US" and by_number["+442079460000"]["country_code"] == "GB"

    other_agent = await api.agent(name="Sales")
    linked = await api.ok("PUT", "/phone-numbers/link", json={"phone_number": "+918071387205", "agent_id": other_agent})
    assert linked == {"success": True, "phone_number": "+918071387205", "agent_id": other_agent}

    deleted = await api.ok("DELETE", "/phone-numbers/%2B918071387205")
    assert deleted == {"phone_number": "+918071387205", "deleted": True, "unassigned": True}
    assert (await api.ok("DELETE", "/phone-numbers/14155550100"))["deleted"] is True
    assert [n["number"] for n in (await api.ok("GET", "/phone-numbers"))["numbers"]] == ["+442079460000"]


async def test_phone_number_errors(api: Api):
    agent_id = await api.agent()
    await api.number("+918071387205", agent_id)
    await api.error("POST", "/phone-numbers/import", 409, "CONFLICT",
                    json={"phone_number": "+918071387205", "agent_id": agent_id, "use_existing_credentials": True})
    # another tenant cannot take the number either: inbound calls are routed by it
    other_agent = (await api.ok("POST", "/assistant", key=api.other,
                                json={"name": "X", "welcome_message": "", "agent_prompt": ""}))["id"]
    await api.error("POST", "/phone-numbers/import", 409, "CONFLICT", key=api.other,
                    json={"phone_number": "+918071387205", "agent_id": other_agent,
                          "trunk": {"host": "sip.other.net"}})
    await api.error("POST", "/phone-numbers/import", 400, "BAD_REQUEST",
                    json={"phone_number": "+918071387206", "agent_id": agent_id,
                          "vobiz_auth_id": "<vobiz_auth_id>", "vobiz_auth_token": "<vobiz_auth_token>"})
    await api.error("POST", "/phone-numbers/import", 400, "BAD_REQUEST", key=api.other,
                    json={"phone_number": "+918071387206", "agent_id": other_agent, "use_existing_credentials": True})
    await api.error("POST", "/phone-numbers/import", 404, "SIP_TRUNK_NOT_FOUND",
                    json={"phone_number": "+918071387206", "agent_id": agent_id, "trunk_id": MISSING})
    await api.error("POST", "/phone-numbers/import", 404, "AGENT_NOT_FOUND",
                    json={"phone_number": "+918071387206", "agent_id": MISSING, "use_existing_credentials": True})
    for bad in ("12345", "+0123456789", "+1234567890123456", "call me"):
        message = await api.error("POST", "/phone-numbers/import", 422, "VALIDATION_ERROR",
                                  json={"phone_number": bad, "agent_id": agent_id, "use_existing_credentials": True})
        assert message.startswith("phone_number")
    await api.error("POST", "/phone-numbers/import", 422, "VALIDATION_ERROR",
                    json={"phone_number": "+918071387206", "agent_id": agent_id, "trunk": {"host": "a b"}})

    await api.error("PUT", "/phone-numbers/link", 404, "PHONE_NUMBER_NOT_FOUND",
                    json={"phone_number": "+918071387299", "agent_id": agent_id})
    await api.error("PUT", "/phone-numbers/link", 404, "AGENT_NOT_FOUND",
                    json={"phone_number": "+918071387205", "agent_id": MISSING})
    await api.error("DELETE", "/phone-numbers/%2B918071387299", 404, "PHONE_NUMBER_NOT_FOUND")
    await api.error("DELETE", "/phone-numbers/abc", 422, "VALIDATION_ERROR")
    await api.error("GET", "/phone-numbers", 401, "UNAUTHORIZED", key=None)
    await api.error("GET", "/phone-numbers", 401, "INVALID_API_KEY", key="sk_live_wrong")


async def test_sip_trunks(api: Api):
    created = await api.ok("POST", "/sip-trunks", json={"name": "carrier", "host": "sip.carrier.net", "port": 5080,
                                                        "transport": "tcp", "username": "acme", "password": "s3cret"})
    assert set(created) == {"id", "client_id", "name", "host", "port", "transport", "username", "has_password",
                            "register", "srtp", "registration", "created_at", "updated_at"}
    assert created["port"] == 5080 and created["has_password"] is True and "s3cret" not in str(created)
    listed = await api.ok("GET", "/sip-trunks")
    assert [t["id"] for t in listed["trunks"]] == [created["id"]]
    updated = await api.ok("PATCH", f"/sip-trunks/{created['id']}", json={"password": None, "port": 5060})
    assert updated["has_password"] is False and updated["port"] == 5060 and updated["host"] == "sip.carrier.net"
    await api.error("PATCH", f"/sip-trunks/{created['id']}", 422, "VALIDATION_ERROR", json={"transport": "sctp"})
    await api.error("POST", "/sip-trunks", 422, "VALIDATION_ERROR", json={"host": "x", "port": 70000})
    await api.error("POST", "/sip-trunks", 422, "VALIDATION_ERROR", json={"port": 5060})

    agent_id = await api.agent()
    await api.number("+918071387205", agent_id, trunk=None, trunk_id=created["id"])
    assert await api.ok("DELETE", f"/sip-trunks/{created['id']}") == {"success": True, "id": created["id"]}
    assert (await api.ok("GET", "/phone-numbers"))["numbers"][0]["trunk_id"] is None  # the number stays
    for method in ("GET", "PATCH", "DELETE"):
        await api.error(method, f"/sip-trunks/{created['id']}", 404, "SIP_TRUNK_NOT_FOUND", json={})


async def test_discovery(api: Api, settings):
    models = await api.ok("GET", "/discovery/models")
    assert {(m["ai_provider"], m["name"]) for m in models["models"]} == {("LOCAL", "smollm2-135m-instruct"),
                                                                          ("FAKE", "echo")}
    assert all(m["status"] == "active" and uuid.UUID(m["id"]) for m in models["models"])
    assert await api.ok("GET", "/discovery/models") == models  # ids are stable

    voices = await api.ok("GET", "/discovery/voices")
    joe = next(v for v in voices["voices"] if v["name"] == "joe")
    assert joe == {**joe, "tts_provider": "PIPER", "language": "ENGLISH", "gender": "MALE", "status": "active"}
    transcription = await api.ok("GET", "/discovery/transcription-models")
    assert {(m["provider"], m["name"]) for m in transcription["models"]} == {("WHISPER", "tiny.en"),
                                                                             ("FAKE", "scripted")}
    for path in ("/discovery/models", "/discovery/voices", "/discovery/transcription-models"):
        await api.error("GET", path, 401, "UNAUTHORIZED", key=None)
        await api.error("GET", path, 403, "INSUFFICIENT_SCOPE", key=api.publishable)

    assert await api.ok("GET", "/discovery/ice-servers", key=api.publishable) == {"ice_servers": []}
    settings.ice_servers = [{"urls": "stun:stun.example.org:3478"},
                            {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"}]
    ice = await api.ok("GET", "/discovery/ice-servers", key=api.publishable)
    assert ice == {"ice_servers": [
        {"urls": ["stun:stun.example.org:3478"], "username": None, "credential": None},
        {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"},
    ]}
    await api.error("GET", "/discovery/ice-servers", 401, "UNAUTHORIZED", key=None)
