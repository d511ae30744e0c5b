"""A campaign's candidates as the dialer leaves them (`GET /campaigns/{id}/prospects`; docs/campaigns.md)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from control_api.schemas.common import RequestModel, ResponseModel

CandidateStatus = Literal["pending", "in_progress", "completed", "failed"]
Outcome = Literal["answered", "busy", "no_answer", "failed"]


class CandidateListQuery(RequestModel):
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class CandidateOut(ResponseModel):
    id: str  # the prospect's (lead's) id
    name: str | None
    phone: str | None
    status: CandidateStatus
    attempts: int  # calls placed to them by this campaign
    last_outcome: Outcome | None
    next_attempt_at: datetime | None  # when a retry is due (pending only)
    call_ids: list[str]


class CandidateList(ResponseModel):
    prospects: list[CandidateOut]
    total: int
