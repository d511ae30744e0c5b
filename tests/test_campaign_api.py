"""The campaign additions through the API, without a dialer: GET /campaigns/{id}/prospects (its shape, paging,
another client's campaign), the GET /calls campaign filter, the live counts of a campaign nobody dialled yet."""
from __future__ import annotations

from test_api_fixtures import Api, api, settings  # noqa: F401  (fixtures)

ALL_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


async def campaign(client: Api, phones: list[str]) -> str:
    agent_id = await client.agent()
    body = {"name": "Survey", "agent_id": agent_id, "use_vanira_managed": True, "call_days": ALL_DAYS,
            "candidates": [{"name": f"P{i}", "phone": phone} for i, phone in enumerate(phones)]}
    return (await client.ok("POST", "/campaigns", json=body))["campaign_id"]


async def test_candidates_are_listed_with_where_the_dialer_has_them(api: Api) -> None:  # noqa: F811
    phones = [f"+1555300{i:04d}" for i in range(5)]
    campaign_id = await campaign(api, phones)
    page = await api.ok("GET", f"/campaigns/{campaign_id}/prospects")
    assert page["total"] == 5 and [p["phone"] for p in page["prospects"]] == phones
    assert page["prospects"][0] == {"id": page["prospects"][0]["id"], "name": "P0", "phone": phones[0],
                                    "status": "pending", "attempts": 0, "last_outcome": None,
                                    "next_attempt_at": None, "call_ids": []}
    second = await api.ok("GET", f"/campaigns/{campaign_id}/prospects?limit=2&offset=2")
    assert [p["phone"] for p in second["prospects"]] == phones[2:4] and second["total"] == 5
    lead = await api.ok("GET", f"/leads/{page['prospects'][0]['id']}")
    assert (lead["status"], lead["lead_source"], lead["prospect_data"]) == ("New", "campaign", {})
    detail = await api.ok("GET", f"/campaigns/{campaign_id}")
    assert (detail["total_prospects"], detail["active_prospects"], detail["pending_prospects"]) == (5, 0, 5)
    calls = await api.ok("GET", f"/calls?campaign_id={campaign_id}")
    assert calls == {"calls": [], "total": 0}


async def test_another_clients_campaign_and_bad_ids(api: Api) -> None:  # noqa: F811
    campaign_id = await campaign(api, ["+15553000001"])
    await api.error("GET", f"/campaigns/{campaign_id}/prospects", 404, "CAMPAIGN_NOT_FOUND", key=api.other)
    await api.error("GET", "/campaigns/not-a-uuid/prospects", 404, "CAMPAIGN_NOT_FOUND")
    await api.error("GET", f"/campaigns/{campaign_id}/prospects?limit=0", 422, "VALIDATION_ERROR")
    await api.error("GET", "/calls?campaign_id=nope", 422, "VALIDATION_ERROR")
    others = await api.ok("GET", f"/calls?campaign_id={campaign_id}", key=api.other)
    assert others["total"] == 0
