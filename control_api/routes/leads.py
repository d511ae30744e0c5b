"""Leads (`/leads`): the prospects that calls and campaigns create, newest first."""
from __future__ import annotations

from sqlalchemy import func, select

from control_api.auth import get_owned
from control_api.openapi import Ctx, Resource
from control_api.schemas.leads import LeadList, LeadListQuery, LeadOut
from control_api.storage.models import Prospect

api = Resource("Leads")


def lead_out(prospect: Prospect) -> LeadOut:
    return LeadOut(
        id=prospect.id,
        client_id=prospect.client_id,
        name=prospect.name,
        phone_number=prospect.phone,
        email_id=prospect.email_id,
        alternate_phone_number=prospect.alternate_phone_number,
        alternate_email_id=prospect.alternate_email_id,
        lead_source=prospect.lead_source,
        status=prospect.status,
        remarks=prospect.remarks,
        created_at=prospect.created_at,
        updated_at=prospect.updated_at,
    )


@api.get("/leads", query=LeadListQuery, response=LeadList)
async def list_leads(ctx: Ctx) -> LeadList:
    """List your leads (page with limit ≤ 500 and offset; `total` counts them all)."""
    query: LeadListQuery = ctx.query
    mine = Prospect.client_id == ctx.client_id
    async with ctx.db.session() as session:
        total = await session.scalar(select(func.count(Prospect.id)).where(mine))
        rows = (await session.scalars(
            select(Prospect).where(mine).order_by(Prospect.created_at.desc(), Prospect.id)
            .limit(query.limit).offset(query.offset)
        )).all()
    return LeadList(leads=[lead_out(p) for p in rows], total=total or 0)


@api.get("/leads/{id}", response=LeadOut, errors=("LEAD_NOT_FOUND",))
async def get_lead(ctx: Ctx) -> LeadOut:
    """Get one lead."""
    lead_id = ctx.uuid("id")
    async with ctx.db.session() as session:
        prospect = await get_owned(session, Prospect, lead_id, ctx.principal, "LEAD_NOT_FOUND", "Lead not found")
    return lead_out(prospect)


routes = api.routes
