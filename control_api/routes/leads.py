"""Leads (`/leads`): the prospects that calls and campaigns create, newest first."""
from __future__ import annotations

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource
from control_api.schemas.leads import LeadList, LeadListQuery, LeadOut
from control_api.storage.leads import lead_page
from control_api.storage.models import Prospect
from control_api.storage.owned import get_owned

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
        prospect_data=dict(prospect.prospect_data or {}),
        created_at=prospect.created_at,
        updated_at=prospect.updated_at,
    )


@api.get("/leads", query=LeadListQuery, response=LeadList)
async def list_leads(ctx: Ctx) -> LeadList:
    """List your leads (page with limit ≤ 500 and offset; `total` counts them all)."""
    query: LeadListQuery = ctx.query
    rows, total = await lead_page(ctx.db, ctx.client_id, query.limit, query.offset)
    return LeadList(leads=[lead_out(p) for p in rows], total=total)


@api.get("/leads/{id}", response=LeadOut, errors=("LEAD_NOT_FOUND",))
async def get_lead(ctx: Ctx) -> LeadOut:
    """Get one lead."""
    lead_id = ctx.uuid("id")
    prospect = await get_owned(ctx.db, Prospect, ctx.client_id, lead_id)
    return lead_out(or_404(prospect, "LEAD_NOT_FOUND", "Lead not found"))


routes = api.routes
