"""Call control beyond the seed: `POST /calls/{id}/end`."""
from __future__ import annotations

from datetime import datetime

from control_api.schemas.common import ResponseModel


class CallEnded(ResponseModel):
    success: bool
    call_id: str
    status: str  # completed | failed: the record's status once the call is over
    end_reason: str | None  # "api_hangup", or how the call ended if it ended on its own meanwhile
    ended_at: datetime | None
