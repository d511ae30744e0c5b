"""Leads (`/leads`): the prospects that calls and campaigns create."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from control_api.schemas.common import RequestModel, ResponseModel


class LeadListQuery(RequestModel):
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class LeadOut(ResponseModel):
    id: str
    client_id: str
    name: str | None
    phone_number: str | None
    email_id: str | None
    alternate_phone_number: str | None
    alternate_email_id: str | None
    lead_source: str | None
    status: str | None
    remarks: str | None
    prospect_data: dict[str, Any]  # what post-call analysis stored on the lead (store_to_prospect_data)
    created_at: datetime
    updated_at: datetime


class LeadList(ResponseModel):
    leads: list[LeadOut]
    total: int
