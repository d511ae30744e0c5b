"""Campaigns: the seed's create body, the state machine, and the seed's error codes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

MISSING = "6d1f8a52-0000-4000-8000-000000000000"
SEED_CAMPAIGN = {
    "name": "Q1 Feedback Survey",
    "agent_id": None,  # filled in per test
    "candidates": [{"name": "John Doe", "phone": "+1234567890"}],
    "provider": "vonage",
    "timezone": "Asia/Kolkata",
    "call_hours_start": "09:00:00",
    "call_hours_end": "18:00:00",
    "call_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "max_concurrent_calls": 5,
    "call_timeout_seconds": 60,
    "start_campaign": True,
    "from_numbers": ["+918071387205", "+919876543210"],
    "use_vanira_managed": True,
    "retry_failed_calls": True,
    "max_retries_failed": 3,
    "retry_delay_failed_seconds": 300,
    "retry_busy_calls": True,
    "max_retries_busy": 2,
    "retry_delay_busy_seconds": 180,
    "retry_no_answer_calls": True,
    "max_retries_no_answer": 3,
    "retry_delay_no_answer_seconds": 600,
}


async def seeded(api: Api) -> dict:
    """The seed's body for a fresh agent whose two caller IDs are imported."""
    agent_id = await api.agent()
    for number in SEED_CAMPAIGN["from_numbers"]:
        await api.number(number, agent_id)
    return {**SEED_CAMPAIGN, "agent_id": agent_id}


async def test_seed_campaign_create_and_read(api: Api):
    body = await seeded(api)
    created = await api.ok("POST", "/campaigns", json=body)
    assert set(created) == {"success", "campaign_id", "total_prospects", "message", "started"}
    assert created["success"] is True and created["started"] is True and created["total_prospects"] == 1
    campaign_id = created["campaign_id"]

    listed = await api.ok("GET", "/campaigns")
    assert set(listed) == {"data"}
    summary = listed["data"][0]
    assert set(summary) == {"id", "name", "status", "agent_id", "client_id", "provider", "total_prospects",
                            "successful_calls", "failed_calls", "created_at", "updated_at"}
    assert summary["status"] == "active" and summary["provider"] == "vonage" and summary["total_prospects"] == 1

    detail = await api.ok("GET", f"/campaigns/{campaign_id}")
    assert detail["status"] == "active" and detail["timezone"] == "Asia/Kolkata"
    assert detail["max_concurrent_calls"] == 5 and detail["call_days"] == SEED_CAMPAIGN["call_days"]
    assert detail["total_prospects"] == 1 and detail["pending_prospects"] == 1 and detail["active_prospects"] == 0
    assert detail["retry_busy_calls"] is True and detail["max_retries_busy"] == 2
    assert detail["use_vanira_managed"] is True and detail["started_at"] is not None
    assert sorted(d["number"] for d in detail["allocated_dids"]) == sorted(SEED_CAMPAIGN["from_numbers"])

    leads = (await api.ok("GET", "/leads"))["leads"]
    assert [(lead["name"], lead["phone_number"], lead["lead_source"]) for lead in leads] == [
        ("John Doe", "+1234567890", "campaign")]


async def test_campaign_defaults_and_candidates(api: Api):
    agent_id = await api.agent()
    candidates = [{"name": f"P{i}", "phone": f"+1415555{i:04d}"} for i in range(50)]
    created = await api.ok("POST", "/campaigns", json={"name": "Minimal", "agent_id": agent_id,
                                                       "candidates": candidates, "use_vanira_managed": True})
    assert created["started"] is False and created["total_prospects"] == 50
    detail = await api.ok("GET", f"/campaigns/{created['campaign_id']}")
    assert detail["status"] == "draft" and detail["timezone"] == "UTC" and detail["allocated_dids"] == []
    assert detail["call_days"] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    # the same person twice counts once, and a known phone reuses the client's prospect
    dup = await api.ok("POST", "/campaigns", json={"name": "Dup", "agent_id": agent_id, "use_vanira_managed": True,
                                                   "candidates": [{"phone": "+14155550001"}, {"phone": "14155550001"}]})
    assert dup["total_prospects"] == 1
    assert (await api.ok("GET", "/leads"))["total"] == 50


async def test_campaign_create_errors(api: Api):
    body = await seeded(api)
    too_many = [{"name": "x", "phone": f"+1415555{i:04d}"} for i in range(51)]
    await api.error("POST", "/campaigns", 422, "validation_error", json={**body, "candidates": too_many})
    await api.error("POST", "/campaigns", 400, "bad_request",
                    json={**body, "from_numbers": [], "use_vanira_managed": False})
    for field in ("agent_id", "name", "candidates"):
        missing = {k: v for k, v in body.items() if k != field}
        await api.error("POST", "/campaigns", 400, "BAD_REQUEST_FORMAT", json=missing)
    await api.error("POST", "/campaigns", 400, "BAD_REQUEST_FORMAT", json={**body, "candidates": []})
    await api.error("POST", "/campaigns", 404, "AGENT_NOT_FOUND", json={**body, "agent_id": MISSING})
    for field, value in (("timezone", "Mars/Olympus"), ("call_hours_start", "25:00"), ("call_days", ["Funday"]),
                         ("max_concurrent_calls", 0), ("candidates", [{"name": "x", "phone": "123"}])):
        message = await api.error("POST", "/campaigns", 422, "VALIDATION_ERROR", json={**body, field: value})
        assert message.startswith(field), message
    message = await api.error("POST", "/campaigns", 422, "VALIDATION_ERROR",
                              json={**body, "from_numbers": ["+918071387205", "+15555550123"]})
    assert message.startswith("from_numbers.1")
    await api.error("POST", "/campaigns", 401, "UNAUTHORIZED", key=None, json=body)


async def test_campaign_state_machine(api: Api):
    body = await seeded(api)
    campaign_id = (await api.ok("POST", "/campaigns", json={**body, "start_campaign": False}))["campaign_id"]
    base = f"/campaigns/{campaign_id}"

    await api.error("POST", f"{base}/pause", 409, "gateway_error")  # a draft is not running
    await api.error("POST", f"{base}/resume", 409, "gateway_error")
    started = await api.ok("POST", f"{base}/start")
    assert started == {"success": True, "campaign_id": campaign_id, "status": "active",
                       "message": "Campaign started successfully",
                       "extra_data": {"id": campaign_id, "status": "active"}}
    await api.error("POST", f"{base}/start", 409, "gateway_error")
    assert (await api.ok("POST", f"{base}/pause"))["status"] == "paused"
    await api.error("POST", f"{base}/pause", 409, "gateway_error")  # already paused
    assert (await api.ok("POST", f"{base}/resume"))["status"] == "active"
    await api.ok("POST", f"{base}/pause")

    when = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    scheduled = await api.ok("POST", f"{base}/schedule-start",
                             json={"scheduled_start_time": when.isoformat().replace("+00:00", "Z")})
    assert scheduled["status"] == "scheduled" and scheduled["extra_data"]["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled["scheduled_start_time"]) == when
    assert (await api.ok("GET", base))["scheduled_start_time"] is not None
    assert (await api.ok("POST", f"{base}/start"))["status"] == "active"

    await api.error("POST", f"{base}/schedule-start", 409, "gateway_error",
                    json={"scheduled_start_time": when.isoformat()})  # active: cannot schedule
    await api.ok("POST", f"{base}/pause")
    await api.error("POST", f"{base}/schedule-start", 409, "gateway_error",
                    json={"scheduled_start_time": "2020-04-01T09:00:00Z"})  # in the past
    await api.error("POST", f"{base}/schedule-start", 400, "BAD_REQUEST_FORMAT", json={})
    await api.error("POST", f"{base}/schedule-start", 400, "BAD_REQUEST_FORMAT", json={"scheduled_start_time": ""})
    for action in ("start", "pause", "resume"):
        await api.error("POST", f"/campaigns/{MISSING}/{action}", 404, "CAMPAIGN_NOT_FOUND")
        await api.error("POST", f"/campaigns/not-a-uuid/{action}", 400, "BAD_REQUEST_FORMAT")


async def test_campaign_update(api: Api):
    body = await seeded(api)
    campaign_id = (await api.ok("POST", "/campaigns", json=body))["campaign_id"]
    seed_patch = {"name": "<name>", "max_concurrent_calls": None, "allow_reschedule": False,
                  "max_reschedules_per_prospect": None}
    updated = await api.ok("PATCH", f"/campaigns/{campaign_id}", json=seed_patch)
    assert set(updated) == {"id", "name", "status", "updated_at"} and updated["name"] == "<name>"
    detail = await api.ok("GET", f"/campaigns/{campaign_id}")
    assert detail["max_concurrent_calls"] == 5  # null leaves a required setting as it was
    await api.ok("PATCH", f"/campaigns/{campaign_id}",
                 json={"allow_reschedule": True, "max_reschedules_per_prospect": 2})
    detail = await api.ok("GET", f"/campaigns/{campaign_id}")
    assert detail["allow_reschedule"] is True and detail["max_reschedules_per_prospect"] == 2

    await api.error("PATCH", f"/campaigns/{campaign_id}", 400, "BAD_REQUEST", json={})
    await api.error("PATCH", f"/campaigns/{campaign_id}", 422, "VALIDATION_ERROR", json={"max_concurrent_calls": "x"})
    await api.error("PATCH", f"/campaigns/{MISSING}", 404, "CAMPAIGN_NOT_FOUND", json={"name": "x"})
    await api.error("GET", f"/campaigns/{MISSING}", 404, "CAMPAIGN_NOT_FOUND")
    await api.error("GET", "/campaigns/nope", 404, "CAMPAIGN_NOT_FOUND")
