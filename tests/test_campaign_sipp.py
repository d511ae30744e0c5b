"""Campaigns dialling a real trunk: sipp over UDP on 127.0.0.1 (tests/sipp/uas_campaign.xml: the dialled number
picks an answering, busy or never-answering callee), the server in this process (`talkwire serve` as the live
tests run it), everything checked from what sipp saw and from the API.

One mixed campaign of 10 (4 answer, 3 busy, 3 never answer) with short retry delays, a calling window that opens
a few seconds into the test, two caller IDs, a PATCH of its cap, a pause and a resume; beside it, a campaign
scheduled to start a few seconds later on a third caller ID.
"""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from campaign_sipp import ANSWER, BUSY, NO_ANSWER, CampaignTrunk, Dialog, campaign_body, most_at_once
from sipp.harness import SIPP
from test_e2e_sip_calls import Api, serving

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
    pytest.mark.timeout(180),
]

NUMBER_A, NUMBER_B, NUMBER_C = "+15550001001", "+15550001002", "+15550001003"
ZONE = ZoneInfo("America/New_York")
CPS = 5.0


async def poll(api: Api, path: str, done: Any, timeout: float, every: float = 0.2) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await api.ok("GET", path)
        if done(found):
            return found
        assert loop.time() < deadline, f"{path}: still {found}"
        await asyncio.sleep(every)


def at_clock(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%H:%M:%S")


async def test_a_mixed_campaign_keeps_its_window_caps_retries_and_pause(settings, database_url, tmp_path):
    """On SQLite, and on PostgreSQL when TALKWIRE_TEST_POSTGRES_URL is set."""
    trunk = await CampaignTrunk.start(tmp_path / "sipp")
    try:
        async with serving(settings, dialer_max_cps=CPS, database_url=database_url) as api:
            await run_campaigns(api, trunk)
    finally:
        await trunk.stop()


async def run_campaigns(api: Api, trunk: CampaignTrunk) -> None:
    agent_id = await api.agent()
    stored = await api.ok("POST", "/sip-trunks", json={"name": "sipp", "host": "127.0.0.1", "port": trunk.port})
    for number in (NUMBER_A, NUMBER_B, NUMBER_C):
        await api.ok("POST", "/phone-numbers/import",
                     json={"phone_number": number, "agent_id": agent_id, "trunk_id": stored["id"]})
    answer = [f"{ANSWER}000{i}" for i in range(1, 5)]
    busy = [f"{BUSY}000{i}" for i in range(1, 4)]
    never = [f"{NO_ANSWER}000{i}" for i in range(1, 4)]
    # The window opens a few seconds from now, in New York wall-clock time, and stays open for half an hour.
    opens = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    mixed = (await api.ok("POST", "/campaigns", json=campaign_body(
        agent_id, answer + busy + never, name="Mixed", timezone="America/New_York", call_hours_start=at_clock(opens),
        call_hours_end=at_clock(opens + timedelta(minutes=30)), max_concurrent_calls=2,
        from_numbers=[NUMBER_A, NUMBER_B], start_campaign=True,
        retry_busy_calls=True, max_retries_busy=2, retry_delay_busy_seconds=3,
        retry_no_answer_calls=True, max_retries_no_answer=1, retry_delay_no_answer_seconds=2,
        retry_failed_calls=False)))["campaign_id"]
    later = (await api.ok("POST", "/campaigns", json=campaign_body(
        agent_id, [f"{ANSWER}0011", f"{ANSWER}0012"], name="Scheduled", from_numbers=[NUMBER_C],
        max_concurrent_calls=1)))["campaign_id"]
    scheduled_at = datetime.now(UTC) + timedelta(seconds=8)
    await api.ok("POST", f"/campaigns/{later}/schedule-start",
                 json={"scheduled_start_time": scheduled_at.isoformat()})
    assert (await api.ok("GET", f"/campaigns/{later}"))["status"] == "scheduled"

    # Nothing before the window opens; then the cap goes from 2 to 3 (PATCH), then a pause of a few seconds.
    first = await poll(api, f"/campaigns/{mixed}", lambda c: c["active_prospects"] > 0, 15, every=0.05)
    assert first["status"] == "active"
    await asyncio.sleep(2.5)
    await api.ok("PATCH", f"/campaigns/{mixed}", json={"max_concurrent_calls": 3})
    patched = time.time()
    started = await poll(api, f"/campaigns/{later}", lambda c: c["status"] == "active", 15, every=0.1)
    active_seen = datetime.now(UTC)
    await asyncio.sleep(2.0)
    await api.ok("POST", f"/campaigns/{mixed}/pause")
    paused = time.time()
    in_call = (await api.ok("GET", f"/campaigns/{mixed}"))["active_prospects"]
    await asyncio.sleep(4.0)
    await api.ok("POST", f"/campaigns/{mixed}/resume")
    resumed = time.time()

    done = await poll(api, f"/campaigns/{mixed}", lambda c: c["status"] == "completed", 90, every=0.5)
    await poll(api, f"/campaigns/{later}", lambda c: c["status"] == "completed", 30, every=0.5)
    dialogs = trunk.dialogs()
    mine = [d for d in dialogs if d.caller in (NUMBER_A, NUMBER_B)]
    theirs = [d for d in dialogs if d.caller == NUMBER_C]

    # When: not one INVITE before the window opened; the scheduled campaign started on time and dialled after.
    assert mine and min(d.start for d in mine) >= opens.timestamp() - 0.05
    assert (active_seen - scheduled_at).total_seconds() < 3.0, (active_seen, scheduled_at, started)
    assert theirs and min(d.start for d in theirs) >= scheduled_at.timestamp() - 0.05
    # How many: the campaign's cap (2, then 3 from the PATCH on) and each caller ID's (2) at every moment.
    assert most_at_once(mine, until=patched) <= 2
    assert most_at_once(mine) <= 3
    assert most_at_once(mine, since=patched) == 3, "the raised cap was used"
    for number in (NUMBER_A, NUMBER_B):
        assert most_at_once([d for d in mine if d.caller == number]) <= 2, number
    assert most_at_once(theirs) <= 1
    # Calls per second, server-wide: starts spaced by 1/CPS (a little jitter allowed).
    starts = sorted(d.start for d in dialogs)
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 1 / CPS - 0.08
    # Pause: calls in flight finished, nothing new was dialled until the resume.
    assert not [d for d in mine if paused + 0.3 < d.start < resumed], (paused, resumed)
    assert in_call <= 3
    # Retries: exactly their number, each no sooner than its delay after the attempt ended.
    by_callee: dict[str, list[Dialog]] = {}
    for d in mine:
        by_callee.setdefault(d.callee, []).append(d)
    assert {n: len(by_callee.get(n, [])) for n in answer + busy + never} == (
        {n: 1 for n in answer} | {n: 3 for n in busy} | {n: 2 for n in never})
    for numbers, delay in ((busy, 3.0), (never, 2.0)):
        for number in numbers:
            tries = by_callee[number]
            for previous, following in zip(tries, tries[1:], strict=False):
                assert following.start - previous.end >= delay - 0.25, (number, previous, following)
    assert all(d.answered for n in answer for d in by_callee[n])
    assert not any(d.answered for n in busy + never for d in by_callee[n])
    assert all(any(m.startswith("CANCEL") for m in d.messages) for n in never for d in by_callee[n])

    # Counts and candidates.
    assert (done["active_prospects"], done["pending_prospects"], done["total_prospects"]) == (0, 0, 10)
    listed = {c["id"]: c for c in (await api.ok("GET", "/campaigns"))["data"]}
    assert (listed[mixed]["successful_calls"], listed[mixed]["failed_calls"]) == (4, 3 * 3 + 3 * 2)
    assert (listed[later]["successful_calls"], listed[later]["failed_calls"]) == (2, 0)
    page = await api.ok("GET", f"/campaigns/{mixed}/prospects?limit=100")
    assert page["total"] == 10
    seen = {p["phone"]: p for p in page["prospects"]}
    calls = await api.ok("GET", f"/calls?campaign_id={mixed}&limit=100")
    assert calls["total"] == 19
    call_ids = {c["id"] for c in calls["calls"]}
    for number in answer:
        assert (seen[number]["status"], seen[number]["attempts"], seen[number]["last_outcome"]) == (
            "completed", 1, "answered")
    for number in busy:
        assert (seen[number]["status"], seen[number]["attempts"], seen[number]["last_outcome"]) == (
            "failed", 3, "busy")
    for number in never:
        assert (seen[number]["status"], seen[number]["attempts"], seen[number]["last_outcome"]) == (
            "failed", 2, "no_answer")
    for candidate in page["prospects"]:
        assert candidate["next_attempt_at"] is None
        assert len(candidate["call_ids"]) == candidate["attempts"] and set(candidate["call_ids"]) <= call_ids
    two = await api.ok("GET", f"/campaigns/{mixed}/prospects?limit=2&offset=8")
    assert [p["id"] for p in two["prospects"]] == [p["id"] for p in page["prospects"][8:]]
    # The leads follow: answered ones Contacted, the rest Not reachable.
    for number, status in [(answer[0], "Contacted"), (busy[0], "Not reachable"), (never[0], "Not reachable")]:
        lead = await api.ok("GET", f"/leads/{seen[number]['id']}")
        assert lead["status"] == status and lead["lead_source"] == "campaign", lead
    record = await api.ok("GET", f"/calls/{seen[answer[0]]['call_ids'][0]}")
    assert record["status"] == "completed" and record["prospect"]["id"] == seen[answer[0]]["id"]
