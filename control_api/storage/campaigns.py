"""Campaigns with their candidates (`campaign_prospects`) and caller IDs (`campaign_numbers`)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.storage import Database
from control_api.storage.models import Campaign, CampaignNumber, CampaignProspect, PhoneNumber, Prospect, utcnow
from control_api.storage.owned import owned


@dataclass(frozen=True, slots=True)
class Candidate:
    phone: str
    name: str | None


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    """A campaign with its candidates counted by status and its caller IDs (link, number), oldest first."""

    campaign: Campaign
    total: int
    active: int
    pending: int
    numbers: list[tuple[CampaignNumber, PhoneNumber]]


# Moves a campaign to its next state; raises to leave it unchanged. Gets the campaign and the time now.
Transition = Callable[[Campaign, datetime], None]


async def _prospect_for(session: AsyncSession, client_id: str, candidate: Candidate) -> Prospect:
    """The client's oldest prospect with the candidate's phone, else a new one (lead source `campaign`)."""
    prospect = await session.scalar(
        select(Prospect).where(Prospect.client_id == client_id, Prospect.phone == candidate.phone)
        .order_by(Prospect.created_at, Prospect.id).limit(1))
    if prospect is None:
        prospect = Prospect(client_id=client_id, name=candidate.name or "Unknown", phone=candidate.phone,
                            lead_source="campaign")
        session.add(prospect)
        await session.flush()
    return prospect


async def create_campaign(
    db: Database, client_id: str, fields: Mapping[str, Any], candidates: Sequence[Candidate],
    numbers: Sequence[PhoneNumber], max_concurrent_calls: int,
) -> tuple[Campaign, int]:
    """Store a campaign with its candidates (as prospects, reused by phone) and caller IDs; (campaign, number of
    distinct prospects). The caller checks the agent and the numbers are the client's."""
    async with db.session() as session:
        campaign = Campaign(client_id=client_id, **fields)
        session.add(campaign)
        await session.flush()
        prospect_ids: list[str] = []
        for candidate in candidates:
            prospect = await _prospect_for(session, client_id, candidate)
            if prospect.id not in prospect_ids:
                prospect_ids.append(prospect.id)
        session.add_all(
            CampaignProspect(client_id=client_id, campaign_id=campaign.id, prospect_id=pid) for pid in prospect_ids)
        session.add_all(
            CampaignNumber(client_id=client_id, campaign_id=campaign.id, phone_number_id=number.id,
                           max_concurrent_calls=max_concurrent_calls)
            for number in numbers)
    return campaign, len(prospect_ids)


async def list_campaigns(db: Database, client_id: str) -> list[tuple[Campaign, int]]:
    """The client's campaigns, newest first, each with its number of candidates."""
    totals = (
        select(CampaignProspect.campaign_id, func.count(CampaignProspect.id).label("n"))
        .where(CampaignProspect.client_id == client_id).group_by(CampaignProspect.campaign_id).subquery()
    )
    query = (select(Campaign, totals.c.n).outerjoin(totals, totals.c.campaign_id == Campaign.id)
             .where(Campaign.client_id == client_id).order_by(Campaign.created_at.desc(), Campaign.id))
    async with db.session() as session:
        return [(campaign, n or 0) for campaign, n in (await session.execute(query)).all()]


async def campaign_progress(db: Database, client_id: str, campaign_id: str) -> CampaignProgress | None:
    """The client's campaign with its counts and caller IDs; None when it is not theirs."""
    by_status = (select(CampaignProspect.status, func.count(CampaignProspect.id))
                 .where(CampaignProspect.campaign_id == campaign_id).group_by(CampaignProspect.status))
    dids = (select(CampaignNumber, PhoneNumber).join(PhoneNumber, PhoneNumber.id == CampaignNumber.phone_number_id)
            .where(CampaignNumber.campaign_id == campaign_id)
            .order_by(CampaignNumber.created_at, CampaignNumber.id))
    async with db.session() as session:
        campaign = await owned(session, Campaign, client_id, campaign_id)
        if campaign is None:
            return None
        counts: dict[str, int] = {status: count for status, count in (await session.execute(by_status)).all()}
        numbers = [(link, number) for link, number in (await session.execute(dids)).all()]
    # active: candidates in a call now; pending: not called yet or waiting for a retry (dialer.states)
    return CampaignProgress(campaign, sum(counts.values()), counts.get("in_progress", 0), counts.get("pending", 0),
                            numbers)


async def owned_campaign(db: Database, client_id: str, campaign_id: str) -> Campaign | None:
    """The client's campaign; None when it is not theirs."""
    async with db.session() as session:
        return await owned(session, Campaign, client_id, campaign_id)


async def move_campaign(db: Database, client_id: str, campaign_id: str, transition: Transition) -> Campaign | None:
    """Apply `transition(campaign, now)` to the client's campaign and stamp `updated_at`; None when not theirs."""
    async with db.session() as session:
        campaign = await owned(session, Campaign, client_id, campaign_id)
        if campaign is None:
            return None
        now = utcnow()
        transition(campaign, now)
        campaign.updated_at = now
    return campaign
