"""`SipLeg`: one phone call on the SIP user agent, seen through the transport-neutral Leg contract."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from media.leg import Leg
from signalling.sip.dialog import Dialog
from signalling.sip.rtp import RtpSession
from signalling.sip.trunk import Trunk

if TYPE_CHECKING:
    from signalling.sip.ua import SipUserAgent

SAMPLE_RATE = 8000

# Outcomes recorded on calls (extra_details.outcome).
ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no_answer"
REJECTED = "rejected"
AUTH_FAILED = "auth_failed"
NETWORK_ERROR = "network_error"
NO_USABLE_CODEC = "no_usable_codec"
REMOTE_HANGUP = "remote_hangup"
AGENT_HANGUP = "agent_hangup"
TRANSFERRED = "transferred"


def outcome_for_status(status: int) -> str:
    """Final SIP status of an unanswered INVITE → call outcome."""
    if status in (486, 600):
        return BUSY
    if status in (408, 480, 487):
        return NO_ANSWER
    if status in (401, 407):
        return AUTH_FAILED
    return REJECTED


@dataclass(frozen=True)
class CallResult:
    """How an INVITE ended: answered, or not and why. `sip_status` is the final SIP status (None if none came)."""

    answered: bool
    outcome: str
    sip_status: int | None
    reason: str = ""


class TransferFailed(Exception):
    """The REFER was refused or the transfer target did not answer; the call goes on."""

    def __init__(self, message: str, sip_status: int | None = None) -> None:
        super().__init__(message)
        self.sip_status = sip_status


class SipLeg(Leg):
    kind = "sip"
    channel = "voice_sip"

    def __init__(self, ua: "SipUserAgent", *, direction: str, dialog: Dialog, rtp: RtpSession,
                 remote_number: str, local_number: str, display_name: str | None = None,
                 trunk: Trunk | None = None, context: Any = None) -> None:
        super().__init__(SAMPLE_RATE)
        self._ua = ua
        self.direction = direction  # "outbound" | "inbound"
        self.dialog = dialog
        self.rtp = rtp
        self.remote_number = remote_number
        self.local_number = local_number
        self.display_name = display_name
        self.trunk = trunk
        self.context = context  # what the inbound resolver decided (e.g. the agent), or the dialer's
        self.answered: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self.outcome: str | None = None
        self.sip_status: int | None = None
        self.created_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.on_hold = False
        # User-agent state, private to signalling.sip.ua.
        self._dest: tuple[str, int] = ("", 0)  # where in-dialog requests of an outbound call go
        self._invite_txn: Any = None  # the current INVITE client transaction (outbound)
        self._ringing = False  # a provisional response arrived, so CANCEL may be sent
        self._cancel_reason: str | None = None  # we gave up ringing (ring timeout, hang-up)
        self._cancel_sent = False
        self._ack: tuple[bytes, tuple[str, int]] | None = None  # our ACK for the 2xx, re-sent on retransmits
        self._acked: asyncio.Event | None = None  # inbound: set when our 2xx was ACKed
        self._session_version = 1  # SDP o= version
        self._notify_queue: asyncio.Queue | None = None  # REFER progress (sipfrag status, terminated)

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (the call record's provider_call_id)."""
        return self.dialog.call_id

    @property
    def duration(self) -> float:
        """Seconds from answer to end (0 for unanswered calls); grows while the call is up."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.ended_at or time.time()) - self.answered_at)

    async def send_event(self, message: dict) -> None:
        """Phone calls have no data channel: events to the client are dropped."""

    async def hangup(self, reason: str = AGENT_HANGUP) -> None:
        """BYE once answered, CANCEL while ringing; `ended` resolves with `reason`."""
        await self._ua.hangup_leg(self, reason)

    async def transfer(self, target: str) -> None:
        """Blind transfer by REFER. Returns once the target answered (and this leg has ended with
        "transferred"); raises TransferFailed otherwise, with the call still up."""
        await self._ua.transfer_leg(self, target)

    async def send_dtmf(self, digits: str) -> None:
        """RFC 4733 events (SIP INFO when the peer offered no telephone-event); returns once sent."""
        await self._ua.send_dtmf(self, digits)
