"""The dialer's database steps. Every step is one short transaction; all of the dialer's state lives here.

Claiming is atomic: `claim_attempts` locks the campaign row (PostgreSQL `FOR UPDATE`; SQLite transactions take
the write lock when they begin), re-checks that the campaign is active, counts the calls in flight per caller ID
and moves up to the free number of `pending`, due candidates to `in_progress`, per caller ID. Several processes
sharing one PostgreSQL therefore never claim the same attempt twice, and the concurrency caps hold across them.
(Rows are picked with `SELECT … FOR UPDATE SKIP LOCKED`, then moved with `UPDATE … WHERE id IN (…) AND
status = 'pending'`, both in that one transaction.)

Each claim carries a random `claim_token`, the claiming process's `dialer_id` and a lease (`lease_until`) that
the live process keeps renewing. An attempt is recorded only under its token, so an attempt that was given up
as lost is never recorded twice.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.dialer.placer import Attempt, AttemptResult
from control_api.dialer.retry import Decision, Outcome, RetryPolicy, RetryRule, decide, outcome_of
from control_api.dialer.states import (
    DIALER_LEAD_STATUSES,
    CampaignStatus,
    LeadStatus,
    ProspectStatus,
    lead_status_after,
)
from control_api.dialer.window import CallingWindow
from control_api.storage import Database
from control_api.storage.models import (
    Agent,
    Call,
    Campaign,
    CampaignNumber,
    CampaignProspect,
    PhoneNumber,
    Prospect,
)
from media.end_reason import EndReason

PENDING, IN_PROGRESS = ProspectStatus.PENDING.value, ProspectStatus.IN_PROGRESS.value
ACTIVE = CampaignStatus.ACTIVE.value


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str | None  # E.164; None: the default trunk's own caller ID (use_vanira_managed)
    trunk_id: str | None
    max_concurrent: int | None  # None: only the campaign's cap applies


@dataclass(frozen=True, slots=True)
class DialPlan:
    """What the dialer needs of an active campaign, read once per tick."""

    campaign_id: str
    client_id: str
    agent_id: str
    max_concurrent: int
    ring_timeout: float
    window: CallingWindow
    caller_ids: tuple[CallerId, ...]


def _changed(result: Result[Any]) -> int:
    """Rows an UPDATE changed."""
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0


def window_of(campaign: Campaign) -> CallingWindow:
    return CallingWindow.of(campaign.timezone, campaign.call_hours_start, campaign.call_hours_end,
                            campaign.call_days or [])


def policy_of(campaign: Campaign) -> RetryPolicy:
    return RetryPolicy(
        busy=RetryRule(campaign.retry_busy_calls, campaign.max_retries_busy, campaign.retry_delay_busy_seconds),
        no_answer=RetryRule(campaign.retry_no_answer_calls, campaign.max_retries_no_answer,
                            campaign.retry_delay_no_answer_seconds),
        failed=RetryRule(campaign.retry_failed_calls, campaign.max_retries_failed,
                         campaign.retry_delay_failed_seconds),
    )


async def start_due_campaigns(db: Database, now: datetime) -> int:
    """Turn every `scheduled` campaign whose `scheduled_start_time` has come into `active`; how many."""
    async with db.session() as session:
        result = await session.execute(
            update(Campaign)
            .where(Campaign.status == CampaignStatus.SCHEDULED.value, Campaign.scheduled_start_time <= now)
            .values(status=ACTIVE, started_at=func.coalesce(Campaign.started_at, now), updated_at=now)
            .execution_options(synchronize_session=False))
    return _changed(result)


async def active_plans(db: Database) -> list[DialPlan]:
    """Every active campaign with its caller IDs (allocated numbers in order, then the default trunk). A campaign
    whose agent is inactive or deleted is left out: it dials nobody (and spends no attempts) until that changes."""
    async with db.session() as session:
        callable_agents = select(Agent.id).where(Agent.active.is_(True), Agent.deleted_at.is_(None))
        campaigns = list((await session.scalars(
            select(Campaign).where(Campaign.status == ACTIVE, Campaign.agent_id.in_(callable_agents))
            .order_by(Campaign.created_at, Campaign.id))).all())
        if not campaigns:
            return []
        links = (await session.execute(
            select(CampaignNumber, PhoneNumber).join(PhoneNumber, PhoneNumber.id == CampaignNumber.phone_number_id)
            .where(CampaignNumber.campaign_id.in_([c.id for c in campaigns]), PhoneNumber.is_active.is_(True))
            .order_by(CampaignNumber.created_at, CampaignNumber.id))).all()
    numbers: dict[str, list[CallerId]] = {}
    for link, number in links:
        numbers.setdefault(link.campaign_id, []).append(
            CallerId(number.number, number.trunk_id, link.max_concurrent_calls))
    plans = []
    for campaign in campaigns:
        caller_ids = list(numbers.get(campaign.id, []))
        if campaign.use_managed_numbers:
            caller_ids.append(CallerId(None, None, None))
        plans.append(DialPlan(campaign.id, campaign.client_id, campaign.agent_id, campaign.max_concurrent_calls,
                              float(campaign.call_timeout_seconds), window_of(campaign), tuple(caller_ids)))
    return plans


def _share(caller_ids: Sequence[CallerId], in_flight: dict[str | None, int], free: int) -> list[int]:
    """How many new calls each caller ID takes: always the least busy one with room, so calls spread."""
    load = [in_flight.get(c.number, 0) for c in caller_ids]
    share = [0] * len(caller_ids)
    for _ in range(free):
        room = [i for i, c in enumerate(caller_ids) if c.max_concurrent is None or load[i] < c.max_concurrent]
        if not room:
            break
        best = min(room, key=lambda i: load[i])
        load[best] += 1
        share[best] += 1
    return share


async def _in_flight_by_number(session: AsyncSession, campaign_id: str) -> dict[str | None, int]:
    rows = await session.execute(
        select(CampaignProspect.from_number, func.count(CampaignProspect.id))
        .where(CampaignProspect.campaign_id == campaign_id, CampaignProspect.status == IN_PROGRESS)
        .group_by(CampaignProspect.from_number))
    return {number: count for number, count in rows.all()}


async def claim_attempts(db: Database, plan: DialPlan, wanted: int, now: datetime, dialer_id: str,
                         lease: timedelta) -> list[Attempt]:
    """Claim up to `wanted` due candidates of the campaign for new attempts, within its caps, atomically."""
    async with db.session() as session:
        campaign = (await session.execute(select(Campaign.status, Campaign.max_concurrent_calls)
                                          .where(Campaign.id == plan.campaign_id).with_for_update())).first()
        if campaign is None or campaign.status != ACTIVE:
            return []
        in_flight = await _in_flight_by_number(session, plan.campaign_id)
        free = min(wanted, campaign.max_concurrent_calls - sum(in_flight.values()))
        if free <= 0:
            return []
        tokens: dict[str, CallerId] = {}
        for caller_id, count in zip(plan.caller_ids, _share(plan.caller_ids, in_flight, free), strict=True):
            if count == 0:
                continue
            token = str(uuid.uuid4())
            due = (select(CampaignProspect.id)
                   .where(CampaignProspect.campaign_id == plan.campaign_id, CampaignProspect.status == PENDING,
                          or_(CampaignProspect.next_attempt_at.is_(None), CampaignProspect.next_attempt_at <= now))
                   .order_by(CampaignProspect.created_at, CampaignProspect.id).limit(count)
                   .with_for_update(skip_locked=True))
            # Two statements, not `id IN (SELECT … SKIP LOCKED)`: PostgreSQL may run such a subquery more than
            # once per UPDATE, and with SKIP LOCKED each run finds other rows (more claimed than asked).
            ids = list((await session.scalars(due)).all())
            if not ids:
                break
            result = await session.execute(
                update(CampaignProspect)
                .where(CampaignProspect.id.in_(ids), CampaignProspect.status == PENDING)
                .values(status=IN_PROGRESS, claim_token=token, dialer_id=dialer_id, lease_until=now + lease,
                        from_number=caller_id.number, attempt_started_at=now,
                        attempts=CampaignProspect.attempts + 1, updated_at=now)
                .execution_options(synchronize_session=False))
            claimed = _changed(result)
            if claimed:
                tokens[token] = caller_id
            if claimed < count:
                break  # nothing more is due
        if not tokens:
            return []
        rows = (await session.execute(
            select(CampaignProspect, Prospect.phone).join(Prospect, Prospect.id == CampaignProspect.prospect_id)
            .where(CampaignProspect.claim_token.in_(list(tokens)))
            .order_by(CampaignProspect.created_at, CampaignProspect.id))).all()
    return [
        Attempt(row.id, row.claim_token or "", plan.client_id, plan.campaign_id, plan.agent_id, row.prospect_id,
                phone or "", tokens[row.claim_token or ""].number, tokens[row.claim_token or ""].trunk_id,
                plan.ring_timeout, row.attempts)
        for row, phone in rows
    ]


async def note_calls(db: Database, calls: Sequence[tuple[str, str, str]]) -> None:
    """Name live attempts' calls on their candidates, (row id, claim token, call id) each, in one statement
    (`last_call_id`; it joins `call_ids` when the attempt is recorded, also when it is recorded as lost)."""
    if not calls:
        return
    table = cast(Table, CampaignProspect.__table__)  # Core: one executemany, no ORM bulk-by-key rules
    async with db.session() as session:
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"), table.c.claim_token == bindparam("token"))
            .values(last_call_id=bindparam("call_id")),
            [{"row_id": row_id, "token": token, "call_id": call_id} for row_id, token, call_id in calls])


async def renew_leases(db: Database, claim_tokens: Sequence[str], until: datetime) -> None:
    """Keep the claims of this process's live attempts."""
    if not claim_tokens:
        return
    async with db.session() as session:
        await session.execute(
            update(CampaignProspect)
            .where(CampaignProspect.claim_token.in_(list(claim_tokens)), CampaignProspect.status == IN_PROGRESS)
            .values(lease_until=until).execution_options(synchronize_session=False))


async def release_claim(db: Database, campaign_prospect_id: str, claim_token: str, now: datetime) -> None:
    """Hand back a claimed attempt that was never dialled (the campaign was paused first): pending again."""
    async with db.session() as session:
        await session.execute(
            update(CampaignProspect)
            .where(CampaignProspect.id == campaign_prospect_id, CampaignProspect.claim_token == claim_token,
                   CampaignProspect.status == IN_PROGRESS)
            .values(status=PENDING, attempts=CampaignProspect.attempts - 1, claim_token=None, dialer_id=None,
                    lease_until=None, from_number=None, updated_at=now)
            .execution_options(synchronize_session=False))


async def campaign_is_active(db: Database, campaign_id: str) -> bool:
    async with db.session() as session:
        return await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)) == ACTIVE


async def record_result(db: Database, campaign_prospect_id: str, claim_token: str, result: AttemptResult,
                        now: datetime) -> Decision | None:
    """`record_results` for one attempt."""
    return (await record_results(db, [(campaign_prospect_id, claim_token, result)], now)).get(campaign_prospect_id)


async def record_results(db: Database, outcomes: Sequence[tuple[str, str, AttemptResult]],
                         now: datetime) -> dict[str, Decision]:
    """Record how attempts ended, (row id, claim token, result) each, and what comes next for each candidate
    (retry due, done, given up), with the campaigns' counts and the leads' statuses — one transaction, a handful
    of statements however many attempts. Returns the decisions by row id; an attempt whose claim is no longer
    held (already given up as lost) is left out."""
    if not outcomes:
        return {}
    tokens = {row_id: token for row_id, token, _ in outcomes}
    results = {row_id: result for row_id, _, result in outcomes}
    decisions: dict[str, Decision] = {}
    async with db.session() as session:
        rows = [row for row in (await session.scalars(select(CampaignProspect).where(
            CampaignProspect.id.in_(list(tokens)), CampaignProspect.status == IN_PROGRESS).with_for_update())).all()
            if row.claim_token == tokens[row.id]]
        if not rows:
            return {}
        campaigns = {c.id: (c, policy_of(c), window_of(c)) for c in (await session.scalars(
            select(Campaign).where(Campaign.id.in_({row.campaign_id for row in rows})))).all()}
        answered: dict[str, list[int]] = {}  # campaign id -> [answered, not answered]
        leads: dict[str, list[str]] = {}  # the leads' new status -> prospect ids
        for row in rows:
            if row.campaign_id not in campaigns:
                continue
            _, policy, window = campaigns[row.campaign_id]
            result = results[row.id]
            decision = _record(row, result, policy, window, now)
            decisions[row.id] = decision
            answered.setdefault(row.campaign_id, [0, 0])[0 if row.last_outcome == Outcome.ANSWERED.value else 1] += 1
            leads.setdefault(lead_status_after(LeadStatus.NEW.value, decision.status), []).append(row.prospect_id)
        for campaign_id, (ok, not_ok) in answered.items():
            await session.execute(
                update(Campaign).where(Campaign.id == campaign_id)
                .values(successful_calls=Campaign.successful_calls + ok, failed_calls=Campaign.failed_calls + not_ok)
                .execution_options(synchronize_session=False))
        for status, prospect_ids in leads.items():  # unless someone else's value is there (states.py)
            await session.execute(
                update(Prospect)
                .where(Prospect.id.in_(prospect_ids), Prospect.status.in_(sorted(DIALER_LEAD_STATUSES)))
                .values(status=status, updated_at=now).execution_options(synchronize_session=False))
    return decisions


def _record(row: CampaignProspect, result: AttemptResult, policy: RetryPolicy, window: CallingWindow,
            now: datetime) -> Decision:
    """Move one candidate on after its attempt ended with `result` (the row is changed in place)."""
    ended = result.ended_at or now  # retry delays count from the end of the attempt, not from this write
    outcome = outcome_of(result.end_reason, result.answered)
    counter = f"retries_{outcome.value}"
    used = int(getattr(row, counter, 0) or 0) if outcome is not Outcome.ANSWERED else 0
    decision = decide(policy, outcome, used, ended, window)
    if decision.retry_counted is not None:
        setattr(row, counter, used + 1)
    row.last_call_id = result.call_id or row.last_call_id
    if row.last_call_id and row.last_call_id not in (row.call_ids or []):
        row.call_ids = [*(row.call_ids or []), row.last_call_id]
    row.status = decision.status.value
    row.next_attempt_at = decision.next_attempt_at
    row.last_outcome = outcome.value
    row.last_reason = (result.end_reason.value if result.end_reason is not None
                       else ("answered" if result.answered else None))
    row.last_attempt_ended_at = ended
    row.claim_token = row.dialer_id = row.lease_until = row.from_number = None
    row.updated_at = now
    return decision


async def lost_attempts(db: Database, now: datetime, dialer_id: str | None = None) -> list[LostAttempt]:
    """Attempts in flight that no live process holds: those whose lease ran out, and, given `dialer_id` (this
    process's own name, on its start-up), every attempt claimed under that name. Each with its call: the one
    `note_calls` named, else the campaign's latest call to that prospect not already on an earlier attempt (the
    process may have died between creating the call and naming it)."""
    lost = and_(CampaignProspect.lease_until.is_not(None), CampaignProspect.lease_until < now)
    if dialer_id is not None:
        lost = or_(lost, CampaignProspect.dialer_id == dialer_id)
    async with db.session() as session:
        rows = list((await session.scalars(
            select(CampaignProspect).where(CampaignProspect.status == IN_PROGRESS, lost))).all())
        found = []
        for row in rows:
            call = await session.get(Call, row.last_call_id) if row.last_call_id else None
            if call is None:  # the campaign's latest call to them, unless an earlier attempt already has it
                call = await session.scalar(
                    select(Call).where(Call.campaign_id == row.campaign_id, Call.prospect_id == row.prospect_id)
                    .order_by(Call.created_at.desc()).limit(1))
                if call is not None and call.id in (row.call_ids or []):
                    call = None
            found.append(LostAttempt(row.id, row.claim_token or "", call.id if call else None,
                                     call is not None and call.answered_at is not None))
    return found


@dataclass(frozen=True, slots=True)
class LostAttempt:
    row_id: str
    claim_token: str
    call_id: str | None
    answered: bool


async def give_up_lost(db: Database, now: datetime, dialer_id: str | None = None) -> int:
    """Record every lost attempt (see `lost_attempts`) with reason `worker_lost`: as `failed`, which the
    failed-call policy may retry, unless its call had been answered (then the candidate is done, as for any
    answered call, and is not called again). How many."""
    lost = await lost_attempts(db, now, dialer_id)
    await record_results(db, [(attempt.row_id, attempt.claim_token,
                               AttemptResult(attempt.answered, EndReason.WORKER_LOST, attempt.call_id))
                              for attempt in lost], now)
    return len(lost)


async def complete_finished(db: Database, campaign_id: str, now: datetime) -> bool:
    """Mark the active campaign `completed` if none of its candidates is pending or in progress."""
    open_work = select(CampaignProspect.id).where(
        CampaignProspect.campaign_id == campaign_id, CampaignProspect.status.in_([PENDING, IN_PROGRESS]))
    async with db.session() as session:
        result = await session.execute(
            update(Campaign).where(Campaign.id == campaign_id, Campaign.status == ACTIVE, ~open_work.exists())
            .values(status=CampaignStatus.COMPLETED.value, completed_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
    return _changed(result) > 0


async def in_flight_count(db: Database, campaign_id: str) -> dict[str | None, int]:
    """Calls in flight of a campaign per caller ID (None: the default trunk's)."""
    async with db.session() as session:
        return await _in_flight_by_number(session, campaign_id)


@dataclass(frozen=True, slots=True)
class CandidateView:
    """One candidate as `GET /campaigns/{id}/prospects` lists it."""

    id: str  # the prospect's (lead's) id
    name: str
    phone: str | None
    status: str
    attempts: int
    last_outcome: str | None
    next_attempt_at: datetime | None
    call_ids: list[str]


async def list_candidates(db: Database, campaign_id: str, *, limit: int = 100,
                          offset: int = 0) -> tuple[list[CandidateView], int]:
    """A campaign's candidates in the order they were added, one page, with the total. The caller checks the
    campaign is the client's."""
    where = CampaignProspect.campaign_id == campaign_id
    async with db.session() as session:
        total = await session.scalar(select(func.count(CampaignProspect.id)).where(where)) or 0
        rows = (await session.execute(
            select(CampaignProspect, Prospect).join(Prospect, Prospect.id == CampaignProspect.prospect_id)
            .where(where).order_by(CampaignProspect.created_at, CampaignProspect.id).limit(limit).offset(offset)
        )).all()
    return [CandidateView(p.id, p.name, p.phone, row.status, row.attempts, row.last_outcome, row.next_attempt_at,
                          [str(c) for c in row.call_ids or []]) for row, p in rows], int(total)


async def candidate_counts(db: Database, campaign_id: str) -> dict[str, int]:
    """A campaign's candidates per status (`pending`, `in_progress`, `completed`, `failed`)."""
    async with db.session() as session:
        rows = await session.execute(
            select(CampaignProspect.status, func.count(CampaignProspect.id))
            .where(CampaignProspect.campaign_id == campaign_id).group_by(CampaignProspect.status))
        return {status: count for status, count in rows.all()}
