"""The seam between the dialer and whatever places calls (the SIP dispatch in the server, a fake in tests)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from media.end_reason import EndReason


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claimed attempt to call one campaign candidate."""

    campaign_prospect_id: str  # the claim's row
    claim_token: str  # proves the claim when the outcome is recorded
    client_id: str
    campaign_id: str
    agent_id: str
    prospect_id: str
    phone_to: str
    from_number: str | None  # caller ID; None: the default trunk's (use_vanira_managed)
    trunk_id: str | None  # the caller ID's stored trunk; None: the default trunk (TALKWIRE_SIP_TRUNK)
    ring_timeout: float  # seconds (the campaign's call_timeout_seconds), then CANCEL → no_answer
    attempt_number: int  # 1 for the first call of this candidate


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How an attempt ended, once the call is over (hung up, or never connected)."""

    answered: bool
    end_reason: EndReason | None
    call_id: str | None = None
    ended_at: datetime | None = None  # set by the dialer when the attempt returns (retry delays count from it)


# Called by the placer as soon as the call record exists, so the candidate lists the call while it is live.
CallCreated = Callable[[str], Awaitable[None]]


class CallPlacer(Protocol):
    async def place(self, attempt: Attempt, call_created: CallCreated) -> AttemptResult:
        """Place the call and return when it is over. The call record carries the attempt's campaign_id and
        prospect_id. Raising counts as outcome `failed` (reason `error`)."""
        ...
