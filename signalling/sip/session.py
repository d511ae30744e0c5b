"""The INVITE session of one call (RFC 3261 §13, PJSIP's `pjsip_inv_session`): its state and the transitions
between them. Only the session changes its own state; the UAC, the UAS and the user agent call its methods.

    CALLING ──provisional()──► EARLY ──answer()/confirm()──► CONFIRMED ──end()──► TERMINATED
       └──────────────────────────────────────────end()────────────────────────────┘

A CANCEL may only go out once the callee answered provisionally (RFC 3261 §9.1; a 100 Trying counts, and
`trying()` notes it without leaving CALLING): `request_cancel()` records why we gave up, and `take_cancel()`
says when that CANCEL is due (once, and only after a provisional response).

Inbound, our 2xx waits for its ACK: `ack_received()` or, after Timer H, `ack_timed_out()`; either sets the
`acked` event, so nobody waits for an ACK any longer, and `ack_failed` says which it was.
"""
from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass

from signalling.sip.transaction import Address, ClientTransaction

ANSWERED = "answered"  # the outcome of an answered INVITE; every other outcome is an EndReason


class SessionState(enum.Enum):
    CALLING = "calling"  # outbound INVITE sent, nothing but 100 heard back
    EARLY = "early"  # a provisional response (180/183) arrived: CANCEL is allowed
    CONFIRMED = "confirmed"  # answered (2xx sent or received)
    TERMINATED = "terminated"


@dataclass(frozen=True)
class CallResult:
    """How an INVITE ended: answered, or not and why. `sip_status` is the final SIP status (None if none came)."""

    answered: bool
    outcome: str  # ANSWERED or an EndReason (busy, no_answer, ...)
    sip_status: int | None
    reason: str = ""


class InviteSession:
    def __init__(self) -> None:
        self.state = SessionState.CALLING
        self.answered: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self.outcome: str | None = None
        self.sip_status: int | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.on_hold = False
        self.dest: Address = ("", 0)  # where in-dialog requests of an outbound call go
        self.invite_txn: ClientTransaction | None = None  # the current INVITE client transaction (outbound)
        self._provisional_seen = False
        self.cancel_reason: str | None = None  # we gave up ringing (ring timeout, hang-up)
        self._cancel_sent = False
        self.ack: tuple[bytes, Address] | None = None  # our ACK for the 2xx, re-sent on its retransmissions
        self.acked: asyncio.Event | None = None  # inbound: set when our latest 2xx was ACKed (or given up on)
        self.ack_failed = False  # inbound: Timer H fired with our 2xx never ACKed
        self.sdp_version = 1  # SDP o= version of our session description

    # ---- outbound: ringing and giving up
    @property
    def ringing(self) -> bool:
        """A provisional response arrived (so a CANCEL may be sent)."""
        return self._provisional_seen

    def trying(self) -> None:
        """A 100 Trying: the INVITE reached the far end (a CANCEL may go out), nothing rings yet."""
        self._provisional_seen = True

    def provisional(self) -> None:
        self._provisional_seen = True
        if self.state is SessionState.CALLING:
            self.state = SessionState.EARLY

    def request_cancel(self, reason: str) -> None:
        """We give up the unanswered INVITE (ring timeout, hang-up); the first reason stays."""
        if self.cancel_reason is None:
            self.cancel_reason = reason

    def take_cancel(self) -> bool:
        """True exactly once, when a CANCEL was asked for and may go out now."""
        if self.cancel_reason is None or self._cancel_sent or not self._provisional_seen:
            return False
        self._cancel_sent = True
        return True

    # ---- answered
    def confirm(self, status: int) -> None:
        """The INVITE got a 2xx: the dialog is up (even if we end it at once, e.g. a CANCEL crossed it)."""
        self.state = SessionState.CONFIRMED
        self.sip_status = status
        self.answered_at = time.time()

    def answer(self, status: int) -> None:
        """Confirmed and usable: `answered` resolves."""
        self.confirm(status)
        self.answered.set_result(CallResult(True, ANSWERED, status))

    def expect_ack(self) -> asyncio.Event:
        """We (re-)sent a 2xx: a fresh event for its ACK."""
        self.acked = asyncio.Event()
        return self.acked

    def ack_received(self) -> None:
        if self.acked is not None:
            self.acked.set()

    def ack_timed_out(self) -> None:
        """Timer H: our 2xx was never ACKed (RFC 3261 §13.3.1.4: the session is to be ended by a BYE)."""
        self.ack_failed = True
        if self.acked is not None:
            self.acked.set()

    def next_sdp_version(self) -> int:
        self.sdp_version += 1
        return self.sdp_version

    def hold(self, on_hold: bool) -> None:
        self.on_hold = on_hold

    # ---- ending
    def end(self, reason: str, status: int | None = None) -> bool:
        """Terminate with `reason` (an unanswered call resolves `answered` with it); False if already over."""
        if self.state is SessionState.TERMINATED:
            return False
        self.state = SessionState.TERMINATED
        self.outcome = reason
        if status is not None:
            self.sip_status = status
        self.ended_at = time.time()
        if not self.answered.done():
            self.answered.set_result(CallResult(False, reason, self.sip_status))
        return True

    @property
    def terminated(self) -> bool:
        return self.state is SessionState.TERMINATED
