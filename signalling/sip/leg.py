"""`SipLeg`: one phone call on the SIP user agent, seen through the transport-neutral Leg contract.

The leg holds what the call is (dialog, RTP session, numbers, the INVITE session's state); what it can do
(hang up, transfer, send DTMF) goes through `SipControl`, which the user agent implements.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from media.end_reason import EndReason
from media.leg import Leg
from signalling.sip.dialog import Dialog
from signalling.sip.routing import InboundInvite
from signalling.sip.rtp import RtpSession
from signalling.sip.session import CallResult, InviteSession
from signalling.sip.trunk import Trunk

SAMPLE_RATE = 8000


def outcome_for_status(status: int) -> EndReason:
    """Final SIP status of an unanswered INVITE → call outcome."""
    if status in (486, 600):
        return EndReason.BUSY
    if status in (408, 480, 487):
        return EndReason.NO_ANSWER
    if status in (401, 407):
        return EndReason.AUTH_FAILED
    return EndReason.REJECTED


class SipControl(Protocol):
    """The user agent's side of a leg's actions."""

    async def hangup_leg(self, leg: SipLeg, reason: str) -> None: ...

    async def transfer_leg(self, leg: SipLeg, target: str) -> None: ...

    async def send_dtmf(self, leg: SipLeg, digits: str) -> None: ...


class SipLeg(Leg):
    kind = "sip"
    channel = "voice_sip"

    def __init__(self, control: SipControl, *, direction: str, dialog: Dialog, rtp: RtpSession,
                 remote_number: str, local_number: str, display_name: str | None = None,
                 trunk: Trunk | None = None, context: Any = None, invite: InboundInvite | None = None) -> None:
        super().__init__(SAMPLE_RATE)
        self._control = control
        self.direction = direction  # "outbound" | "inbound"
        self.dialog = dialog
        self.rtp = rtp
        self.remote_number = remote_number
        self.local_number = local_number
        self.display_name = display_name
        self.trunk = trunk
        self.context = context  # what the inbound resolver decided (e.g. the agent), or the dialer's
        self.invite = invite  # inbound: the INVITE's user parts, headers and source, as the resolver saw them
        self.session = InviteSession()
        self.created_at = time.time()

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (the call record's provider_call_id)."""
        return self.dialog.call_id

    @property
    def answered(self) -> asyncio.Future[CallResult]:
        return self.session.answered

    @property
    def outcome(self) -> str | None:
        return self.session.outcome

    @property
    def sip_status(self) -> int | None:
        return self.session.sip_status

    @property
    def answered_at(self) -> float | None:
        return self.session.answered_at

    @property
    def ended_at(self) -> float | None:
        return self.session.ended_at

    @property
    def on_hold(self) -> bool:
        return self.session.on_hold

    @property
    def duration(self) -> float:
        """Seconds from answer to end (0 for unanswered calls); grows while the call is up."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.ended_at or time.time()) - self.answered_at)

    def deliver_dtmf(self, digit: str) -> None:
        """A keypad digit from the caller (RFC 4733 or SIP INFO) becomes a leg event."""
        self.deliver_event({"type": "dtmf", "digits": digit})

    async def send_event(self, message: dict) -> None:
        """Phone calls have no data channel: events to the client are dropped."""

    async def hangup(self, reason: str = EndReason.AGENT_HANGUP) -> None:
        """BYE once answered, CANCEL while ringing; `ended` resolves with `reason`."""
        await self._control.hangup_leg(self, reason)

    async def transfer(self, target: str) -> None:
        """Blind transfer by REFER. Returns once the target answered (and this leg has ended with
        "transferred"); raises TransferFailed otherwise, with the call still up."""
        await self._control.transfer_leg(self, target)

    async def send_dtmf(self, digits: str) -> None:
        """RFC 4733 events (SIP INFO when the peer offered no telephone-event); returns once sent."""
        await self._control.send_dtmf(self, digits)
