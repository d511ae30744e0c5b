"""Requests inside an established call, both ways: ours (BYE, INFO, and REFER for the transfer module), each
answering one digest challenge with the trunk's credentials; theirs (BYE, INFO with keypad digits).
"""
from __future__ import annotations

import logging

from media.end_reason import EndReason
from signalling.sip.background import Background
from signalling.sip.builder import MessageBuilder, Reply
from signalling.sip.calls import CallTable
from signalling.sip.digest import DigestError, authorization
from signalling.sip.dns import Resolve
from signalling.sip.dtmf import EVENTS, digit_plan, validate_digits
from signalling.sip.leg import SipLeg
from signalling.sip.message import Request, Response
from signalling.sip.transaction import TransactionLayer, TransactionTimeout

log = logging.getLogger(__name__)


class InDialog:
    def __init__(self, builder: MessageBuilder, transactions: TransactionLayer, resolve: Resolve, calls: CallTable,
                 background: Background) -> None:
        self.builder = builder
        self.transactions = transactions
        self.resolve = resolve
        self.calls = calls
        self.background = background

    # ---- ours
    async def request(self, leg: SipLeg, method: str, *, body: bytes = b"", content_type: str | None = None,
                      extra: list[tuple[str, str]] | None = None) -> Response:
        """Send an in-dialog request and return its final response; a 401/407 is answered once with
        the trunk's credentials (trunks may challenge BYE and REFER too)."""
        d = leg.dialog
        if d.peer is not None and not d.route_set:
            dest = d.peer  # inbound call: where the INVITE came from (NAT-friendly, like rport)
        else:
            hop = d.next_hop()
            dest = await self.resolve(hop.host, hop.port or 5060)
        auth: list[tuple[str, str]] = []
        for _attempt in range(2):
            req = self.builder.dialog_request(d, method, leg.local_number or "talkwire", body=body,
                                              content_type=content_type, extra=(extra or []) + auth)
            resp = await self.transactions.start_client(req, dest).final
            trunk = leg.trunk
            if resp.status not in (401, 407) or auth or trunk is None or trunk.username is None:
                return resp
            challenge = resp.headers.get("WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate")
            if challenge is None:
                return resp
            try:
                value = authorization(challenge, username=trunk.username, password=trunk.password or "",
                                      method=method, uri=d.remote_target)
            except DigestError:
                return resp
            auth = [("Authorization" if resp.status == 401 else "Proxy-Authorization", value)]
        return resp

    def bye(self, leg: SipLeg, reason: str) -> None:
        """End an established call: finish the leg at once, send BYE in the background."""
        self.calls.end(leg, reason, leg.sip_status)
        self.background.spawn(self._send_bye(leg), f"sip-bye-{leg.call_id}")

    async def _send_bye(self, leg: SipLeg) -> None:
        try:
            await self.request(leg, "BYE")
        except (TransactionTimeout, OSError) as exc:
            log.info("call %s: BYE got no answer: %s", leg.call_id, exc)

    async def send_dtmf(self, leg: SipLeg, digits: str) -> None:
        cleaned = validate_digits(digits)
        if leg.answered_at is None or leg.ended.done():
            raise ConnectionError("the call is not up")
        neg = leg.rtp.negotiated
        if neg is not None and neg.dtmf_payload_type is not None and leg.rtp.sending:
            await leg.rtp.queue_dtmf(digit_plan(cleaned))
            return
        for digit in cleaned:  # the peer offered no telephone-event: SIP INFO (application/dtmf-relay)
            await self.request(leg, "INFO", body=f"Signal={digit}\r\nDuration=100\r\n".encode(),
                               content_type="application/dtmf-relay")

    # ---- theirs
    def on_bye(self, req: Request, reply: Reply) -> None:
        leg = self.calls.dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        self.calls.end(leg, EndReason.REMOTE_HANGUP)

    def on_info(self, req: Request, reply: Reply) -> None:
        leg = self.calls.dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        if req.content_type == "application/dtmf-relay":
            for line in req.body.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                digit = value.strip().upper()
                if key.strip().lower() == "signal" and len(digit) == 1 and digit in EVENTS:
                    leg.deliver_dtmf(digit)
