"""Campaigns (`/campaigns`): stored with their candidates and caller IDs, moved through their states.

    draft ──start──► active ──pause──► paused ──resume──► active ──(dialer)──► completed
    draft | paused | scheduled ──schedule-start──► scheduled ──start (or the time comes)──► active

An action a campaign's state does not allow answers the seed's `gateway_error` (409), e.g. pausing a
paused campaign (the moves are `control_api.dialer.states`'). The dialer (`control_api.dialer`) works through
an active campaign's candidates; `GET /campaigns/{id}/prospects` shows where each one stands.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from control_api.auth import or_404
from control_api.dialer.states import TransitionError, next_campaign_status
from control_api.errors import ApiError, validation_message
from control_api.openapi import Ctx, Resource, api_error
from control_api.schemas.campaign_prospects import CandidateList, CandidateListQuery, CandidateOut
from control_api.schemas.campaigns import (
    MAX_CANDIDATES,
    AllocatedDid,
    CampaignAction,
    CampaignCreate,
    CampaignCreated,
    CampaignDetail,
    CampaignList,
    CampaignScheduled,
    CampaignSummary,
    CampaignUpdate,
    CampaignUpdated,
    ExtraData,
    ScheduleStart,
)
from control_api.schemas.common import parse_uuid
from control_api.storage import campaigns as campaign_store
from control_api.storage import dialer as dialer_store
from control_api.storage.agents import get_agent
from control_api.storage.campaigns import Candidate
from control_api.storage.models import Campaign, PhoneNumber, utcnow
from control_api.storage.owned import update_owned
from control_api.storage.phone_numbers import find_number

api = Resource("Campaigns")

CAMPAIGN_404 = ("CAMPAIGN_NOT_FOUND", "Campaign not found")
REQUIRED = ("agent_id", "name", "candidates")
# action -> past participle for the message (the moves themselves: dialer.states.ACTIONS)
DONE = {"start": "started", "pause": "paused", "resume": "resumed", "schedule-start": "start scheduled"}


def _missing_required(exc: ValidationError) -> ApiError | None:
    """The seed answers a missing agent_id, name or candidates with BAD_REQUEST_FORMAT (400)."""
    for err in exc.errors():
        loc = err.get("loc", ())
        if loc and loc[0] in REQUIRED and len(loc) == 1 and err["type"] in ("missing", "too_short"):
            return ApiError(400, "BAD_REQUEST_FORMAT",
                            f"Missing required fields (agent_id, name, candidates): {validation_message(exc)}")
    return None


def _bad_schedule(exc: ValidationError) -> ApiError:
    return ApiError(400, "BAD_REQUEST_FORMAT", f"scheduled_start_time: {validation_message(exc)}")


def _campaign_id(ctx: Ctx, code: str) -> str:
    """The `id` path parameter as a UUID, else `code`."""
    return ctx.uuid("id", code)


async def _caller_ids(ctx: Ctx, wanted: list[str]) -> list[PhoneNumber]:
    """The client's numbers `wanted` (each once, in order), else VALIDATION_ERROR naming the first not theirs."""
    numbers: dict[str, PhoneNumber] = {}
    for i, number in enumerate(wanted):
        row = await find_number(ctx.db, ctx.client_id, number)
        if row is None:
            raise api_error("VALIDATION_ERROR", f"from_numbers.{i}: {number} is not one of your phone numbers "
                                                "(import it with POST /phone-numbers/import)")
        numbers.setdefault(row.id, row)
    return list(numbers.values())


@api.post(
    "/campaigns",
    body=CampaignCreate,
    response=CampaignCreated,
    on_invalid_body=_missing_required,
    errors=("BAD_REQUEST_FORMAT", "validation_error", "bad_request", "AGENT_NOT_FOUND"),
)
async def create_campaign(ctx: Ctx) -> CampaignCreated:
    """Create a campaign with up to 50 candidates; `start_campaign: true` starts it at once.

    Caller IDs: `from_numbers` (your imported numbers) and/or `use_vanira_managed: true` (the server's
    own trunk); one of them is required.
    """
    body: CampaignCreate = ctx.body
    if len(body.candidates) > MAX_CANDIDATES:
        raise api_error("validation_error", f"candidates: at most {MAX_CANDIDATES} per campaign "
                                            f"({len(body.candidates)} given)")
    if not body.from_numbers and not body.use_vanira_managed:
        raise api_error("bad_request", "No Caller IDs provided. You must either provide from_numbers or set "
                                       "use_vanira_managed to true.")
    fields = body.model_dump(exclude={"candidates", "start_campaign", "use_vanira_managed", "agent_id"})
    agent = or_404(await get_agent(ctx.db, ctx.client_id, parse_uuid(body.agent_id)),
                   "AGENT_NOT_FOUND", "Agent not found")
    numbers = await _caller_ids(ctx, body.from_numbers)
    fields.update(
        agent_id=agent.id,
        use_managed_numbers=body.use_vanira_managed,
        status="active" if body.start_campaign else "draft",
        started_at=utcnow() if body.start_campaign else None,
    )
    candidates = [Candidate(phone=c.phone, name=c.name) for c in body.candidates]
    campaign, total = await campaign_store.create_campaign(ctx.db, ctx.client_id, fields, candidates, numbers,
                                                           body.max_concurrent_calls)
    started = campaign.status == "active"
    return CampaignCreated(
        success=True,
        campaign_id=campaign.id,
        total_prospects=total,
        message="Campaign created and started successfully" if started else "Campaign created successfully",
        started=started,
    )


@api.get("/campaigns", response=CampaignList)
async def list_campaigns(ctx: Ctx) -> CampaignList:
    """List your campaigns, newest first."""
    return CampaignList(data=[
        CampaignSummary(
            id=c.id, name=c.name, status=c.status, agent_id=c.agent_id, client_id=c.client_id, provider=c.provider,
            total_prospects=n, successful_calls=c.successful_calls, failed_calls=c.failed_calls,
            created_at=c.created_at, updated_at=c.updated_at,
        )
        for c, n in await campaign_store.list_campaigns(ctx.db, ctx.client_id)
    ])


@api.get("/campaigns/{id}", response=CampaignDetail, errors=("CAMPAIGN_NOT_FOUND",))
async def get_campaign(ctx: Ctx) -> CampaignDetail:
    """Get a campaign with its settings, progress counts and allocated caller IDs."""
    found = await campaign_store.campaign_progress(ctx.db, ctx.client_id, _campaign_id(ctx, "CAMPAIGN_NOT_FOUND"))
    progress = or_404(found, *CAMPAIGN_404)
    campaign = progress.campaign
    settings = {name: getattr(campaign, name) for name in CampaignDetail.model_fields if hasattr(Campaign, name)}
    return CampaignDetail(**{
        **settings,
        "use_vanira_managed": campaign.use_managed_numbers,
        "total_prospects": progress.total,
        "active_prospects": progress.active,
        "pending_prospects": progress.pending,
        "allocated_dids": [
            AllocatedDid(did_id=number.id, number=number.number, max_concurrent_calls=link.max_concurrent_calls)
            for link, number in progress.numbers
        ],
    })


@api.get("/campaigns/{id}/prospects", query=CandidateListQuery, response=CandidateList,
         errors=("CAMPAIGN_NOT_FOUND",))
async def list_campaign_prospects(ctx: Ctx) -> CandidateList:
    """List a campaign's candidates and where the dialer has them.

    In the order they were added: `status` (`pending`, `in_progress`, `completed`, `failed`), `attempts`,
    `last_outcome`, `next_attempt_at` (a retry's due time) and `call_ids`. Page with limit (≤ 500) and offset.
    """
    query: CandidateListQuery = ctx.query
    campaign_id = _campaign_id(ctx, "CAMPAIGN_NOT_FOUND")
    or_404(await campaign_store.owned_campaign(ctx.db, ctx.client_id, campaign_id), *CAMPAIGN_404)
    rows, total = await dialer_store.list_candidates(ctx.db, campaign_id, limit=query.limit, offset=query.offset)
    return CandidateList(prospects=[CandidateOut.model_validate(asdict(row)) for row in rows], total=total)


@api.patch("/campaigns/{id}", body=CampaignUpdate, response=CampaignUpdated,
           errors=("CAMPAIGN_NOT_FOUND", "BAD_REQUEST"))
async def update_campaign(ctx: Ctx) -> CampaignUpdated:
    """Update a campaign's name, concurrency or rescheduling rules."""
    sent = ctx.body.model_dump(exclude_unset=True)
    if not sent:
        raise api_error("BAD_REQUEST", "No fields provided")
    nullable = {"max_reschedules_per_prospect", "reschedule_min_delay_hours"}
    data = {name: value for name, value in sent.items() if value is not None or name in nullable}
    campaign_id = _campaign_id(ctx, "CAMPAIGN_NOT_FOUND")
    campaign = or_404(await update_owned(ctx.db, Campaign, ctx.client_id, campaign_id, data), *CAMPAIGN_404)
    return CampaignUpdated(id=campaign.id, name=campaign.name, status=campaign.status, updated_at=campaign.updated_at)


async def _transition(ctx: Ctx, action: str, scheduled_at: datetime | None = None) -> Campaign:
    def move(campaign: Campaign, now: datetime) -> None:
        try:
            target = next_campaign_status(campaign.status, action)
        except TransitionError as exc:
            raise api_error("gateway_error", str(exc)) from None
        if scheduled_at is not None and scheduled_at <= now:
            raise api_error("gateway_error", "scheduled_start_time must be in the future")
        campaign.status = target
        if action == "schedule-start":
            campaign.scheduled_start_time = scheduled_at
        elif target == "active":
            campaign.started_at = campaign.started_at or now

    campaign_id = _campaign_id(ctx, "BAD_REQUEST_FORMAT")
    return or_404(await campaign_store.move_campaign(ctx.db, ctx.client_id, campaign_id, move), *CAMPAIGN_404)


def _action_result(campaign: Campaign, action: str) -> dict[str, Any]:
    return {
        "success": True,
        "campaign_id": campaign.id,
        "status": campaign.status,
        "message": f"Campaign {DONE[action]} successfully",
        "extra_data": ExtraData(id=campaign.id, status=campaign.status),
    }


ACTION_ERRORS = ("CAMPAIGN_NOT_FOUND", "BAD_REQUEST_FORMAT", "gateway_error")


@api.post("/campaigns/{id}/start", response=CampaignAction, errors=ACTION_ERRORS)
async def start_campaign(ctx: Ctx) -> CampaignAction:
    """Start a draft or scheduled campaign now."""
    return CampaignAction(**_action_result(await _transition(ctx, "start"), "start"))


@api.post("/campaigns/{id}/pause", response=CampaignAction, errors=ACTION_ERRORS)
async def pause_campaign(ctx: Ctx) -> CampaignAction:
    """Pause an active campaign (calls in progress finish; no new ones start)."""
    return CampaignAction(**_action_result(await _transition(ctx, "pause"), "pause"))


@api.post("/campaigns/{id}/resume", response=CampaignAction, errors=ACTION_ERRORS)
async def resume_campaign(ctx: Ctx) -> CampaignAction:
    """Resume a paused campaign."""
    return CampaignAction(**_action_result(await _transition(ctx, "resume"), "resume"))


@api.post("/campaigns/{id}/schedule-start", body=ScheduleStart, response=CampaignScheduled,
          on_invalid_body=_bad_schedule, errors=ACTION_ERRORS)
async def schedule_campaign(ctx: Ctx) -> CampaignScheduled:
    """Schedule a campaign to start at `scheduled_start_time` (ISO 8601, in the future; no zone means UTC)."""
    when = ctx.body.scheduled_start_time
    if when is None:
        raise api_error("BAD_REQUEST_FORMAT", "scheduled_start_time is required")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    campaign = await _transition(ctx, "schedule-start", when)
    return CampaignScheduled(**_action_result(campaign, "schedule-start"), scheduled_start_time=when)


routes = api.routes
