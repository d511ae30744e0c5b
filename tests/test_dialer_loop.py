"""The dialer against a real database (SQLite and PostgreSQL) with a scripted placer and a virtual clock."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from control_api.dialer.loop import Dialer
from control_api.dialer.placer import Attempt
from control_api.storage import Database
from control_api.storage.models import Campaign, CampaignProspect, Prospect
from tests.dialer_fakes import PHONES, START, ScriptedPlacer, VirtualClock, campaign, candidates, run_for, seed_campaign

async def test_caps_hold_and_calls_spread_over_caller_ids(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=5.0)
    campaign_id = await seed_campaign(db, PHONES, numbers={"+15550100001": 2, "+15550100002": 1},
                                      max_concurrent_calls=3)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=2.0, clock=clock)
    planned: list[float] = []
    launch = dialer._launch

    def record(attempt: Attempt, delay: float) -> None:
        planned.append(clock.monotonic() + delay)
        launch(attempt, delay)

    dialer._launch = record  # type: ignore[method-assign]
    await run_for(dialer, clock, 40)
    assert sorted(c.attempt.phone_to for c in placer.calls) == PHONES  # each once
    assert placer.max_live[campaign_id] == 3
    assert placer.max_live_by_number["+15550100001"] == 2 and placer.max_live_by_number["+15550100002"] == 1
    assert len(planned) == 10 and all(b - a >= 0.5 - 1e-9 for a, b in zip(planned, planned[1:]))  # 2 per second
    assert {c.attempt.ring_timeout for c in placer.calls} == {20.0}
    done = await campaign(db, campaign_id)
    assert (done.status, done.successful_calls, done.failed_calls) == ("completed", 10, 0)
    rows = await candidates(db, campaign_id)
    assert {(r.status, r.attempts, p.status, len(r.call_ids)) for r, p in rows.values()} == {
        ("completed", 1, "Contacted", 1)}


async def test_retries_exactly_their_maximum_at_their_delays(db: Database) -> None:
    clock = VirtualClock(START)
    busy, silent, broken, fine = PHONES[:4]
    placer = ScriptedPlacer(clock, {busy: ["busy"], silent: ["no_answer"], broken: ["failed"],
                                    fine: ["busy", "answered"]}, duration=2.0)
    campaign_id = await seed_campaign(
        db, [busy, silent, broken, fine], managed=True, max_concurrent_calls=10,
        retry_busy_calls=True, max_retries_busy=2, retry_delay_busy_seconds=10,
        retry_no_answer_calls=True, max_retries_no_answer=1, retry_delay_no_answer_seconds=30,
        retry_failed_calls=False, max_retries_failed=3, retry_delay_failed_seconds=5)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=100.0, clock=clock)
    await run_for(dialer, clock, 90)

    def gaps(phone: str) -> list[float]:
        times = [c.at for c in placer.attempts_of(phone)]
        return [b - a for a, b in zip(times, times[1:])]

    assert len(placer.attempts_of(busy)) == 3 and all(12 <= g <= 13.5 for g in gaps(busy))  # 2 s call + 10 s
    assert len(placer.attempts_of(silent)) == 2 and all(32 <= g <= 33.5 for g in gaps(silent))
    assert len(placer.attempts_of(broken)) == 1
    assert len(placer.attempts_of(fine)) == 2
    rows = await candidates(db, campaign_id)
    assert (rows[busy][0].status, rows[busy][0].retries_busy, rows[busy][1].status) == ("failed", 2, "Not reachable")
    assert (rows[silent][0].status, rows[silent][0].last_outcome) == ("failed", "no_answer")
    assert (rows[broken][0].status, rows[broken][0].last_reason) == ("failed", "network_error")
    assert (rows[fine][0].status, rows[fine][1].status, len(rows[fine][0].call_ids)) == ("completed", "Contacted", 2)
    done = await campaign(db, campaign_id)
    assert (done.status, done.successful_calls, done.failed_calls) == ("completed", 1, 7)
    assert {c.attempt.from_number for c in placer.calls} == {None}  # the default trunk


async def test_nothing_is_dialled_outside_the_window(db: Database) -> None:
    clock = VirtualClock(datetime(2026, 3, 2, 13, 59, 50, tzinfo=timezone.utc))  # 08:59:50 in New York (EST)
    placer = ScriptedPlacer(clock, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:3], managed=True, timezone="America/New_York",
                                      call_hours_start="09:00:00", call_hours_end="09:00:20", call_days=["Monday"],
                                      retry_no_answer_calls=True, max_retries_no_answer=1,
                                      retry_delay_no_answer_seconds=60, max_concurrent_calls=1)
    placer.script[PHONES[2]] = ["no_answer", "answered"]
    dialer = Dialer(db, placer, dialer_id="t", max_cps=10.0, clock=clock)
    await run_for(dialer, clock, 60)
    window_open = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
    assert placer.calls and all(window_open <= c.wall < window_open + timedelta(seconds=20) for c in placer.calls)
    rows = await candidates(db, campaign_id)
    # the retry fell after closing time: it waits for next Monday's opening, 09:00 EDT after the DST change
    assert rows[PHONES[2]][0].next_attempt_at == datetime(2026, 3, 9, 13, 0, tzinfo=timezone.utc)
    assert (await campaign(db, campaign_id)).status == "active"


async def test_pause_stops_new_dials_and_resume_continues(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=3.0)
    campaign_id = await seed_campaign(db, PHONES, managed=True, max_concurrent_calls=2)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=10.0, clock=clock)
    await run_for(dialer, clock, 2)
    async with db.session() as session:
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="paused"))
    dialled = len(placer.calls)
    await run_for(dialer, clock, 20)
    assert len(placer.calls) == dialled == 2  # calls in flight finished, none started
    rows = await candidates(db, campaign_id)
    assert sum(r.status == "completed" for r, _ in rows.values()) == 2
    async with db.session() as session:
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="active"))
    await run_for(dialer, clock, 30)
    assert sorted(c.attempt.phone_to for c in placer.calls) == PHONES
    assert (await campaign(db, campaign_id)).status == "completed"


async def test_schedule_start_activates_at_its_time(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:1], managed=True, status="scheduled",
                                      scheduled_start_time=START + timedelta(seconds=5))
    dialer = Dialer(db, placer, dialer_id="t", clock=clock)
    await run_for(dialer, clock, 5)
    assert not placer.calls and (await campaign(db, campaign_id)).status == "scheduled"
    await run_for(dialer, clock, 1)
    started = await campaign(db, campaign_id)
    assert started.status == "active" and started.started_at == START + timedelta(seconds=5)
    assert len(placer.calls) == 1


async def test_a_restart_gives_up_the_lost_attempt_and_retries_it(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, {PHONES[0]: ["hang", "answered"]}, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:1], managed=True, retry_failed_calls=True, max_retries_failed=1,
                                      retry_delay_failed_seconds=5)
    first = Dialer(db, placer, dialer_id="host-a", clock=clock)
    await run_for(first, clock, 3)
    assert len(placer.calls) == 1
    for _, task in list(first._live.values()):  # the process dies: nothing is recorded
        task.cancel()
    await clock.settle()
    rows = await candidates(db, campaign_id)
    assert rows[PHONES[0]][0].status == "in_progress" and rows[PHONES[0]][0].last_call_id == "call-1"

    second = Dialer(db, placer, dialer_id="host-a", clock=clock)  # the same process, restarted
    assert await second.recover() == 1
    await run_for(second, clock, 3)
    assert len(placer.calls) == 1  # not redialled before the failed-call delay
    rows = await candidates(db, campaign_id)
    assert (rows[PHONES[0]][0].last_reason, rows[PHONES[0]][0].retries_failed) == ("worker_lost", 1)
    assert rows[PHONES[0]][0].call_ids == ["call-1"]  # the lost call stays listed
    await run_for(second, clock, 10)
    assert len(placer.calls) == 2
    rows = await candidates(db, campaign_id)
    assert (rows[PHONES[0]][0].status, rows[PHONES[0]][0].attempts) == ("completed", 2)
    assert (await campaign(db, campaign_id)).status == "completed"


async def test_an_expired_lease_of_another_process_is_given_up(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, {PHONES[0]: ["hang"]}, duration=1.0)
    await seed_campaign(db, PHONES[:1], managed=True)
    dead = Dialer(db, placer, dialer_id="host-a", clock=clock, lease_seconds=20)
    await run_for(dead, clock, 2)
    for _, task in list(dead._live.values()):
        task.cancel()
    other = Dialer(db, placer, dialer_id="host-b", clock=clock, lease_seconds=20)
    assert await other.recover() == 0  # host-a's lease still holds
    await clock.advance(25)
    await other.tick()
    campaign_id = placer.calls[0].attempt.campaign_id
    rows = await candidates(db, campaign_id)
    assert (rows[PHONES[0]][0].status, rows[PHONES[0]][0].last_reason) == ("failed", "worker_lost")


async def test_two_dialers_sharing_a_database_never_dial_an_attempt_twice(database_url: str) -> None:
    first_db, second_db = await Database.open(database_url), await Database.open(database_url, migrate=False)
    try:
        clock = VirtualClock(START)
        placer = ScriptedPlacer(clock, duration=3.0)
        phones = [f"+1555100{i:04d}" for i in range(40)]
        campaign_id = await seed_campaign(first_db, phones, numbers={"+15550100009": 7}, managed=True,
                                          max_concurrent_calls=12)
        dialers = [Dialer(first_db, placer, dialer_id="a", max_cps=100.0, clock=clock),
                   Dialer(second_db, placer, dialer_id="b", max_cps=100.0, clock=clock)]
        for _ in range(40):
            await asyncio.gather(*(d.tick() for d in dialers))
            await clock.advance(1.0)
        assert sorted(c.attempt.phone_to for c in placer.calls) == phones
        assert placer.max_live[campaign_id] <= 12 and placer.max_live_by_number["+15550100009"] <= 7
        assert (await campaign(first_db, campaign_id)).successful_calls == 40
    finally:
        await first_db.close()
        await second_db.close()


async def test_candidates_list_and_counts(db: Database) -> None:
    from control_api.storage.dialer import candidate_counts, list_candidates

    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, {PHONES[1]: ["busy"]}, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:3], managed=True, max_concurrent_calls=1)
    dialer = Dialer(db, placer, dialer_id="t", clock=clock)
    await dialer.tick()
    await clock.settle()
    assert await candidate_counts(db, campaign_id) == {"in_progress": 1, "pending": 2}
    await run_for(dialer, clock, 10)
    page, total = await list_candidates(db, campaign_id, limit=2)
    assert total == 3 and [c.phone for c in page] == PHONES[:2]
    assert (page[1].status, page[1].attempts, page[1].last_outcome, page[1].call_ids) == (
        "failed", 1, "busy", ["call-2"])
    assert await candidate_counts(db, campaign_id) == {"completed": 2, "failed": 1}


async def test_a_live_dialer_keeps_its_claims_past_the_lease(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=50.0)
    campaign_id = await seed_campaign(db, PHONES[:1], managed=True)
    live = Dialer(db, placer, dialer_id="host-a", clock=clock, lease_seconds=20)
    other = Dialer(db, placer, dialer_id="host-b", clock=clock, lease_seconds=20)
    assert await live.tick() == 1  # host-a holds the only claim (ticking both at once, either could win it)
    for _ in range(45):
        await asyncio.gather(live.tick(), other.tick())
        await clock.advance(1.0)
    rows = await candidates(db, campaign_id)
    assert rows[PHONES[0]][0].status == "in_progress"  # a 50 s call outlives the 20 s lease: renewed
    for _ in range(30):  # the call ends at 50 s; its report reaches the database a tick or so later (real I/O)
        await asyncio.gather(live.tick(), other.tick())
        await clock.advance(1.0)
        rows = await candidates(db, campaign_id)
        if rows[PHONES[0]][0].status != "in_progress":
            break
    assert (rows[PHONES[0]][0].status, rows[PHONES[0]][0].last_outcome) == ("completed", "answered")
    assert len(placer.calls) == 1 and not other.live_attempts  # the other dialer never took the claim over


async def test_stopping_hands_back_attempts_not_yet_dialled(db: Database) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=30.0)
    campaign_id = await seed_campaign(db, PHONES[:4], managed=True, max_concurrent_calls=4)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=1.0, clock=clock, tick_seconds=5.0)
    await dialer.tick()  # claims 4, paced 1 s apart
    await clock.advance(0.5)
    assert len(placer.calls) == 1
    await dialer.stop(grace=0)
    rows = await candidates(db, campaign_id)
    statuses = sorted((r.status, r.attempts) for r, _ in rows.values())
    assert statuses == [("in_progress", 1), ("pending", 0), ("pending", 0), ("pending", 0)]


async def test_an_inactive_agent_dials_nobody(db: Database) -> None:
    from control_api.storage.models import Agent

    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:2], managed=True)
    agent_id = (await campaign(db, campaign_id)).agent_id
    async with db.session() as session:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(active=False))
    dialer = Dialer(db, placer, dialer_id="t", clock=clock)
    await run_for(dialer, clock, 3)
    assert not placer.calls and (await campaign(db, campaign_id)).status == "active"
    async with db.session() as session:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(active=True))
    await run_for(dialer, clock, 5)
    assert len(placer.calls) == 2


async def test_a_paced_start_that_falls_after_closing_time_is_handed_back(db: Database) -> None:
    clock = VirtualClock(datetime(2026, 3, 2, 9, 59, 59, tzinfo=timezone.utc))
    placer = ScriptedPlacer(clock, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:3], managed=True, call_hours_start="09:00:00",
                                      call_hours_end="10:00:00", max_concurrent_calls=3)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=2.0, clock=clock)
    await run_for(dialer, clock, 5)
    assert len(placer.calls) == 2  # 09:59:59 and 09:59:59.5 dialled; the one paced for 10:00:00 waits
    assert all(c.wall < datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc) for c in placer.calls)
    rows = await candidates(db, campaign_id)
    assert sorted((r.status, r.attempts) for r, _ in rows.values()) == [
        ("completed", 1), ("completed", 1), ("pending", 0)]


async def test_a_lost_attempt_whose_call_was_answered_is_done(db: Database) -> None:
    from control_api.storage.models import Call

    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, {PHONES[0]: ["hang"]}, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:1], managed=True, retry_failed_calls=True, max_retries_failed=3)
    first = Dialer(db, placer, dialer_id="host-a", clock=clock)
    await run_for(first, clock, 2)
    for _, task in list(first._live.values()):
        task.cancel()
    await clock.settle()
    (row, _), = (await candidates(db, campaign_id)).values()
    agent_id = (await campaign(db, campaign_id)).agent_id
    async with db.session() as session:
        call = Call(client_id=row.client_id, agent_id=agent_id, type="sip_call",
                    direction="outbound", status="in-progress", answered_at=START, campaign_id=campaign_id)
        session.add(call)
        await session.flush()
        await session.execute(update(CampaignProspect).where(CampaignProspect.id == row.id)
                              .values(last_call_id=call.id))
    second = Dialer(db, placer, dialer_id="host-a", clock=clock)
    assert await second.recover() == 1
    await run_for(second, clock, 5)
    (row, lead), = (await candidates(db, campaign_id)).values()
    assert (row.status, row.last_outcome, row.last_reason, row.call_ids, lead.status) == (
        "completed", "answered", "worker_lost", [call.id], "Contacted")
    assert len(placer.calls) == 1 and (await campaign(db, campaign_id)).status == "completed"
