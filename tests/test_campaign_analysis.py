"""Post-call analysis end to end: real phone calls to a sipp callee who talks (espeak-ng speech), the agent's
data-collection parameters and success metric, the analysis on the local OpenAI-compatible fake
(TALKWIRE_ANALYSIS_MODEL), and what lands on the call, the prospect and the lead."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from campaign_sipp import TALK, CampaignTrunk, campaign_body
from openai_fake import OpenAIFake, ScriptedReply
from sipp.harness import HAVE_SPEECH_TOOLS, SIPP, make_speech
from test_e2e_sip_calls import Api, serving

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech"),
    pytest.mark.timeout(180),
]

PARAMETERS = [
    {"key": "email", "prompt": "The person's email address", "store_to_prospect": True,
     "prospect_column_name": "email_id"},
    {"key": "budget", "prompt": "Monthly budget in dollars", "data_type": "number", "store_to_prospect_data": True},
    {"key": "plan", "prompt": "The plan they chose", "data_type": "enum", "enum_values": ["Basic", "Pro"],
     "store_to_prospect_data": True, "prospect_data_key": "chosen_plan"},
    {"key": "callback", "prompt": "When to call back", "data_type": "date"},
    {"key": "interested", "prompt": "Whether they want a demo", "data_type": "boolean",
     "store_to_prospect": True, "prospect_column_name": "remarks"},
]
ANSWER = {"email": "ada@example.com", "budget": 250, "plan": "pro", "callback": "2027-01-15",
          "interested": "maybe", "is_call_successful": True}


async def analysed(api: Api, call_id: str, timeout: float = 40) -> dict[str, Any]:
    """The call's record once its analysis is done or failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        record = await api.ok("GET", f"/calls/{call_id}")
        state = (record["extra_details"] or {}).get("analysis", {}).get("state")
        if record["status"] in ("completed", "failed") and state in ("done", "failed"):
            return record
        assert loop.time() < deadline, f"call {call_id}: {record['status']}, analysis {state}"
        await asyncio.sleep(0.2)


async def test_a_call_fills_call_data_prospect_data_and_the_leads_columns(settings, tmp_path):
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    make_speech("Hello, I would like the pro plan.", workdir)
    trunk = await CampaignTrunk.start(workdir)
    try:
        async with OpenAIFake() as fake, serving(
                settings, sip_trunk=trunk.uri, analysis_model=f"OPENAI/{fake.models[0]}",
                openai_base_url=fake.base_url, openai_api_key=fake.api_key, analysis_timeout=1.0) as api:
            agent_id = await api.agent(success_metric={"criteria": "The person gave their email address"})
            for parameter in PARAMETERS:
                await api.ok("POST", f"/assistant/{agent_id}/data-collection", json=parameter)
            draft = (await api.ok("POST", "/campaigns", json=campaign_body(
                agent_id, [f"{TALK}0001", f"{TALK}0002"], use_vanira_managed=True)))["campaign_id"]
            leads = {p["phone"]: p["id"] for p in
                     (await api.ok("GET", f"/campaigns/{draft}/prospects"))["prospects"]}

            # The provider fails twice, then answers; one value has the wrong type.
            fake.add_error(500)
            fake.add_error(503)
            fake.add_tool_calls(("record_call_analysis", ANSWER))
            first = await api.ok("POST", "/calls/create", json={
                "agent_id": agent_id, "type": "sip", "prospect_id": leads[f"{TALK}0001"],
                "sip_data": {"to": f"{TALK}0001"}})
            record = await analysed(api, first["call_id"])
            listed = {c["id"]: c for c in (await api.ok("GET", "/calls"))["calls"]}[first["call_id"]]
            lead = await api.ok("GET", f"/leads/{leads[f'{TALK}0001']}")

            # The provider never answers in time: analysis failed, the rest of the record intact.
            for _ in range(3):
                fake.add(ScriptedReply(text="too late", delay=4.0))
            second = await api.ok("POST", "/calls/create", json={
                "agent_id": agent_id, "type": "sip", "prospect_id": leads[f"{TALK}0002"],
                "sip_data": {"to": f"{TALK}0002"}})
            unanswered = await analysed(api, second["call_id"])
            other_lead = await api.ok("GET", f"/leads/{leads[f'{TALK}0002']}")
            requests = fake.chat_requests
    finally:
        await trunk.stop()

    assert record["status"] == "completed" and any(t["role"] == "user" for t in record["transcript"])
    expected = [{"key": "email", "value": "ada@example.com"}, {"key": "budget", "value": 250},
                {"key": "plan", "value": "Pro"}, {"key": "callback", "value": "2027-01-15"}]
    assert record["call_data"] == expected and listed["call_data"] == expected
    assert record["is_call_successful_according_to_agent_criteria"] is True
    analysis = record["extra_details"]["analysis"]
    assert (analysis["state"], analysis["tries"], analysis["dropped"]) == ("done", 3, ["interested"])
    assert {(kv["key"], kv["value"]) for kv in record["prospect"]["prospect_data"]} == {
        ("budget", 250), ("chosen_plan", "Pro")}
    assert lead["email_id"] == "ada@example.com" and lead["remarks"] is None  # the dropped value wrote nothing
    assert lead["prospect_data"] == {"budget": 250, "chosen_plan": "Pro"}
    # The request: the transcript, and one function whose schema types each field.
    body = requests[2].body
    schema = next(t for t in body["tools"] if t["function"]["name"] == "record_call_analysis")["function"]
    assert "is_call_successful" in schema["parameters"]["properties"]
    assert "hello there" in str(body["messages"]).lower()

    assert unanswered["status"] == "completed" and any(t["role"] == "user" for t in unanswered["transcript"])
    assert unanswered["extra_details"]["analysis"]["state"] == "failed"
    assert "no answer within" in unanswered["extra_details"]["analysis"]["reason"]
    assert unanswered["call_data"] == [] and unanswered["is_call_successful_according_to_agent_criteria"] is None
    assert other_lead["email_id"] is None and other_lead["prospect_data"] == {}
