"""The dialer's calls over SIP: `CallPlacer` on top of the server's outbound SIP calls.

`OutboundCalls` is the narrow part of the SIP dispatch this needs: `dial` (create the call record with the
campaign and prospect on it, send the INVITE, return the call id) and `wait_ended` (when that call is over:
whether it was answered and why it ended). The caller ID's stored trunk, or the default trunk for none, is chosen
by `dial` from `from_number`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from control_api.dialer.placer import Attempt, AttemptResult, CallCreated
from media.end_reason import EndReason

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallEnd:
    answered: bool
    end_reason: EndReason | None


class OutboundCalls(Protocol):
    async def dial(self, *, client_id: str, agent_id: str, to_number: str, name: str | None = None,
                   from_number: str | None = None, ring_timeout: float | None = None,
                   prospect_id: str | None = None, campaign_id: str | None = None) -> str:
        ...

    async def wait_ended(self, call_id: str) -> CallEnd:
        ...


class SipPlacer:
    def __init__(self, calls: OutboundCalls) -> None:
        self.calls = calls

    async def place(self, attempt: Attempt, call_created: CallCreated) -> AttemptResult:
        try:
            call_id = await self.calls.dial(
                client_id=attempt.client_id, agent_id=attempt.agent_id, to_number=attempt.phone_to,
                from_number=attempt.from_number, ring_timeout=attempt.ring_timeout,
                prospect_id=attempt.prospect_id, campaign_id=attempt.campaign_id)
        except Exception as exc:  # SIP off, no trunk, no RTP port: the attempt failed (the failed-call policy decides)
            log.warning("campaign %s: cannot dial %s: %s", attempt.campaign_id, attempt.phone_to, exc)
            return AttemptResult(answered=False, end_reason=EndReason.NETWORK_ERROR)
        await call_created(call_id)
        end = await self.calls.wait_ended(call_id)
        return AttemptResult(end.answered, end.end_reason, call_id)
