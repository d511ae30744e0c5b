"""Calls (create, list, detail, recording) and leads: shapes, filters, scopes and error codes."""
from __future__ import annotations

import wave

import pytest

from control_api.storage import calls as call_store
from control_api.storage.clients import add_key
from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

MISSING = "6d1f8a52-0000-4000-8000-000000000000"
SEED_CALL_CREATE = {
    "agent_id": None,  # filled in per test
    "type": "web",
    "sip_data": {"to": "+919182517283", "name": "John Doe"},
    "sip_data.to": "+919182517283",
    "sip_data.name": "John Doe",
    "sip_data.from_number": "+918071387205",
    "prospect_id": None,
}


async def test_web_call_create_and_read(api: Api, settings):
    agent_id = await api.agent()
    created = await api.ok("POST", "/calls/create", key=api.publishable, json={"agent_id": agent_id, "type": "web"})
    assert set(created) == {"call_id", "status", "worker_url", "prospect_id"} and created["status"] == "in-progress"
    call_id = created["call_id"]
    assert created["worker_url"] == f"{settings.base_url}/webrtc?agent={agent_id}_{call_id}"

    detail = await api.ok("GET", f"/calls/{call_id}")
    assert detail["id"] == call_id and detail["agent_id"] == agent_id
    assert detail["type"] == "web_call" and detail["direction"] == "inbound" and detail["status"] == "in-progress"
    assert detail["prospect"]["name"] == "Unknown" and detail["prospect"]["prospect_data"] == []
    assert detail["agent"] == {"id": agent_id, "name": "Support Bot",
                               "client": {"name": detail["agent"]["client"]["name"], "base_prospect_group_id": None}}
    assert detail["transcript"] == [] and detail["recording_url"] is None and detail["continues_call_id"] is None

    # the anonymous prospect is a lead
    lead = await api.ok("GET", f"/leads/{detail['prospect']['id']}")
    assert lead["lead_source"] == "web_call" and lead["client_id"] == detail["client_id"]


async def test_seed_call_body_with_an_existing_prospect(api: Api):
    agent_id = await api.agent()
    first = await api.web_call(agent_id)
    prospect_id = (await api.ok("GET", f"/calls/{first}"))["prospect"]["id"]
    body = {**SEED_CALL_CREATE, "agent_id": agent_id, "prospect_id": prospect_id}
    created = await api.ok("POST", "/calls/create", json=body)
    assert (await api.ok("GET", f"/calls/{created['call_id']}"))["prospect"]["id"] == prospect_id
    await api.error("POST", "/calls/create", 404, "PROSPECT_NOT_FOUND", json={**body, "prospect_id": MISSING})


async def test_call_create_errors(api: Api):
    agent_id = await api.agent()
    await api.error("POST", "/calls/create", 401, "UNAUTHORIZED", key=None, json={"agent_id": agent_id, "type": "web"})
    await api.error("POST", "/calls/create", 401, "INVALID_API_KEY", key="pk_live_revoked",
                    json={"agent_id": agent_id, "type": "web"})
    await api.error("POST", "/calls/create", 404, "AGENT_NOT_FOUND", json={"agent_id": MISSING, "type": "web"})
    await api.error("POST", "/calls/create", 404, "AGENT_NOT_FOUND", json={"agent_id": "nope", "type": "web"})
    await api.error("POST", "/calls/create", 422, "VALIDATION_ERROR", json={"agent_id": agent_id, "type": "fax"})
    await api.error("POST", "/calls/create", 422, "VALIDATION_ERROR", json={"type": "web"})
    sip = {"agent_id": agent_id, "type": "sip", "sip_data": {"to": "+919182517283", "name": "John Doe"}}
    await api.error("POST", "/calls/create", 403, "INSUFFICIENT_SCOPE", key=api.publishable, json=sip)
    message = await api.error("POST", "/calls/create", 422, "VALIDATION_ERROR",
                              json={**sip, "sip_data": {"to": "+12345"}})
    assert message.startswith("sip_data.to")
    assert (await api.error("POST", "/calls/create", 422, "VALIDATION_ERROR",
                            json={**sip, "sip_data": {"name": "x"}})).startswith("sip_data.to")
    assert (await api.error("POST", "/calls/create", 422, "VALIDATION_ERROR",
                            json={**sip, "sip_data": {**sip["sip_data"], "from_number": "+918071387205"}}
                            )).startswith("sip_data.from_number")
    await api.error("POST", "/calls/create", 503, "UPSTREAM_SERVICE_TIMEOUT", json=sip)


async def test_continue_an_earlier_web_call(api: Api):
    agent_id = await api.agent()
    first = await api.web_call(agent_id)
    second = await api.web_call(agent_id, call_id=first)
    detail = await api.ok("GET", f"/calls/{second}")
    assert detail["continues_call_id"] == first
    assert detail["prospect"]["id"] == (await api.ok("GET", f"/calls/{first}"))["prospect"]["id"]
    await api.error("POST", "/calls/create", 404, "CALL_NOT_FOUND",
                    json={"agent_id": agent_id, "type": "web", "call_id": MISSING})


async def test_list_calls_filters_and_paging(api: Api):
    a1, a2 = await api.agent(name="One"), await api.agent(name="Two")
    ids = [await api.web_call(a1) for _ in range(3)] + [await api.web_call(a2)]
    runtime = api.app.state.runtime
    await call_store.finish_call(runtime.db, ids[0], status="completed",
                                 call_data=[{"key": "sentiment", "value": "positive"}], is_successful=True)

    everything = await api.ok("GET", "/calls")
    assert everything["total"] == 4 and len(everything["calls"]) == 4
    item = next(c for c in everything["calls"] if c["id"] == ids[0])
    assert set(item) == {"id", "agent_id", "client_id", "phone_to", "phone_from", "status", "direction", "type",
                         "created_at", "duration", "recording_url", "is_call_successful_according_to_agent_criteria",
                         "prospect", "agent", "call_data"}
    assert item["status"] == "completed" and item["call_data"] == [{"key": "sentiment", "value": "positive"}]
    assert item["is_call_successful_according_to_agent_criteria"] is True and item["duration"] >= 0
    assert item["agent"] == {"id": a1, "name": "One"} and set(item["prospect"]) == {"id", "name", "phone"}

    assert (await api.ok("GET", "/calls", params={"agent_id": a2}))["total"] == 1
    completed = await api.ok("GET", "/calls", params={"agent_id": a1, "status": "completed"})
    assert [c["id"] for c in completed["calls"]] == [ids[0]]
    page = await api.ok("GET", "/calls", params={"limit": 2, "offset": 1})
    assert page["total"] == 4 and len(page["calls"]) == 2
    assert [c["id"] for c in page["calls"]] == [c["id"] for c in everything["calls"]][1:3]

    await api.error("GET", "/calls", 422, "VALIDATION_ERROR", params={"limit": 501})
    await api.error("GET", "/calls", 422, "VALIDATION_ERROR", params={"status": "ringing"})
    await api.error("GET", "/calls", 422, "VALIDATION_ERROR", params={"agent_id": "x"})
    await api.error("GET", "/calls", 403, "INSUFFICIENT_SCOPE", key=api.publishable)
    await api.error("GET", "/calls", 401, "UNAUTHORIZED", key=None)


async def test_call_detail_transcript_timeline_recording(api: Api, settings):
    agent_id = await api.agent()
    call_id = await api.web_call(agent_id)
    runtime = api.app.state.runtime
    client_id = (await api.ok("GET", f"/calls/{call_id}"))["client_id"]
    await call_store.add_transcript_turn(runtime.db, client_id, call_id, "agent", "Hi!")
    await call_store.add_transcript_turn(runtime.db, client_id, call_id, "user", "Where is my order?")
    await call_store.finish_call(runtime.db, call_id, end_reason="remote_hangup")

    recordings = settings.data_dir / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    with wave.open(str(recordings / f"{call_id}.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x01\x00" * 3200)
    await call_store.set_recording(runtime.db, call_id, f"recordings/{call_id}.wav")

    detail = await api.ok("GET", f"/calls/{call_id}")
    assert [(t["role"], t["text"]) for t in detail["transcript"]] == [("agent", "Hi!"), ("user", "Where is my order?")]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("transcript") == 2 and "status" in kinds
    assert [e["seq"] for e in detail["timeline"]] == sorted(e["seq"] for e in detail["timeline"])
    assert detail["status"] == "completed" and detail["end_reason"] == "remote_hangup"
    assert detail["recording_url"] == f"{settings.base_url}/calls/{call_id}/recording"

    audio = await api.call("GET", f"/calls/{call_id}/recording")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF" and len(audio.content) == 44 + 6400
    await api.error("GET", f"/calls/{call_id}/recording", 403, "INSUFFICIENT_SCOPE", key=api.publishable)
    await api.error("GET", f"/calls/{call_id}/recording", 404, "CALL_NOT_FOUND", key=api.other)
    other_call = await api.web_call(agent_id)
    await api.error("GET", f"/calls/{other_call}/recording", 404, "RECORDING_NOT_FOUND")


async def test_a_status_and_its_timeline_entry_are_stored_together(api: Api, monkeypatch):
    """A reader never sees a call finished without the status step (and details) that finished it: when the
    timeline entry cannot be written, the status and the details are not changed either."""
    call_id = await api.web_call(await api.agent())
    db = api.app.state.runtime.db

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(call_store, "_append", broken)
        with pytest.raises(RuntimeError):
            await call_store.set_status(db, call_id, "completed")
        with pytest.raises(RuntimeError):
            await call_store.finish_call(db, call_id, end_reason="remote_hangup", extra_details={"a": 1})
    detail = await api.ok("GET", f"/calls/{call_id}")
    assert (detail["status"], detail["end_reason"], detail["extra_details"]) == ("in-progress", None, {"worker": "local"})
    assert detail["ended_at"] is None and [e["kind"] for e in detail["timeline"]] == []

    await call_store.finish_call(db, call_id, end_reason="remote_hangup", extra_details={"a": 1})
    detail = await api.ok("GET", f"/calls/{call_id}")
    assert (detail["status"], detail["end_reason"], detail["extra_details"]) == (
        "completed", "remote_hangup", {"worker": "local", "a": 1})
    assert [e["data"] for e in detail["timeline"]] == [{"from": "in-progress", "to": "completed",
                                                        "reason": "remote_hangup"}]


async def test_call_detail_errors(api: Api):
    await api.error("GET", f"/calls/{MISSING}", 404, "CALL_NOT_FOUND")
    await api.error("GET", "/calls/not-a-uuid", 422, "VALIDATION_ERROR")
    call_id = await api.web_call(await api.agent())
    await api.error("GET", f"/calls/{call_id}", 403, "INSUFFICIENT_SCOPE", key=api.publishable)
    await api.error("GET", f"/calls/{call_id}", 404, "CALL_NOT_FOUND", key=api.other)


async def test_leads(api: Api):
    agent_id = await api.agent()
    for _ in range(3):
        await api.web_call(agent_id)
    leads = await api.ok("GET", "/leads")
    assert leads["total"] == 3 and len(leads["leads"]) == 3
    lead = leads["leads"][0]
    assert set(lead) == {"id", "client_id", "name", "phone_number", "email_id", "alternate_phone_number",
                         "alternate_email_id", "lead_source", "status", "remarks", "prospect_data", "created_at",
                         "updated_at"}
    assert lead["status"] == "New"
    assert await api.ok("GET", f"/leads/{lead['id']}") == lead
    assert len((await api.ok("GET", "/leads", params={"limit": 1}))["leads"]) == 1
    await api.error("GET", f"/leads/{MISSING}", 404, "LEAD_NOT_FOUND")
    await api.error("GET", "/leads/123", 422, "VALIDATION_ERROR")
    await api.error("GET", "/leads", 401, "UNAUTHORIZED", key=None)
    await api.error("GET", f"/leads/{lead['id']}", 404, "LEAD_NOT_FOUND", key=api.other)


async def test_publishable_key_origins(api: Api):
    agent_id = await api.agent()
    client_id = (await api.ok("GET", f"/assistant/{agent_id}"))["client_id"]
    shop_key = (await add_key(api.app.state.runtime.db, client_id, "publishable",
                              origins=["https://shop.example"])).key
    body = {"agent_id": agent_id, "type": "web"}
    for path, method, json in (("/calls/create", "POST", body), ("/discovery/ice-servers", "GET", None)):
        allowed = await api.http.request(method, path, json=json,
                                         headers={"X-API-Key": shop_key, "Origin": "https://shop.example"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        await api.error(method, path, 403, "ORIGIN_NOT_ALLOWED", key=None, json=json,
                        headers={"X-API-Key": shop_key, "Origin": "https://evil.example"})
