"""The UAC side of an outbound call: the INVITE, its provisional responses and early media, the digest retry of
a 401/407, giving up by CANCEL (ring timeout or hang-up), and the 2xx with its ACK."""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from media.end_reason import EndReason
from signalling.sip.background import Background
from signalling.sip.builder import MessageBuilder
from signalling.sip.calls import CallTable
from signalling.sip.dialog import Dialog, new_call_id, new_tag
from signalling.sip.digest import DigestError, authorization
from signalling.sip.in_dialog import InDialog, Resolve
from signalling.sip.leg import SipControl, SipLeg, outcome_for_status
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import NameAddr, Response, parse_name_addr
from signalling.sip.rtp import RtpSession
from signalling.sip.sdp import SdpError, negotiate, parse_sdp
from signalling.sip.srtp import SrtpContext
from signalling.sip.transaction import ClientTransaction, TransactionLayer, TransactionTimeout
from signalling.sip.trunk import Trunk

log = logging.getLogger(__name__)


class Uac:
    def __init__(self, control: SipControl, builder: MessageBuilder, transactions: TransactionLayer,
                 resolve: Resolve, calls: CallTable, media: RtpMediaEngine, in_dialog: InDialog,
                 background: Background, rtp_host: str, rtp_ports: tuple[int, int]) -> None:
        self.control = control
        self.builder = builder
        self.transactions = transactions
        self.resolve = resolve
        self.calls = calls
        self.media = media
        self.in_dialog = in_dialog
        self.background = background
        self.rtp_host = rtp_host
        self.rtp_ports = rtp_ports

    async def dial(self, to_number: str, trunk: Trunk, from_number: str | None, display_name: str | None,
                   ring_timeout: float, context: Any) -> SipLeg:
        caller = from_number or trunk.default_caller_id or trunk.username or "talkwire"
        rtp = await RtpSession.open(self.rtp_host, self.rtp_ports)
        rtp.srtp = SrtpContext() if trunk.srtp else None  # the offer says RTP/SAVP with our key
        call_id = new_call_id(self.builder.public_host)
        target = trunk.uri_for(to_number)
        dialog = Dialog(
            call_id=call_id,
            local=NameAddr(display_name or "", f"sip:{caller}@{trunk.host}", {"tag": new_tag()}),
            remote=NameAddr("", target, {}),
            remote_target=target,
            local_cseq=random.randrange(1, 10_000),
        )
        leg = SipLeg(self.control, direction="outbound", dialog=dialog, rtp=rtp, remote_number=to_number,
                     local_number=caller, display_name=display_name, trunk=trunk, context=context)
        rtp.on_dtmf = leg.deliver_dtmf
        self.calls.add(leg)
        try:
            dest = await self.resolve(trunk.host, trunk.dns_port, trunk.transport)
        except OSError as exc:
            log.info("call %s: cannot resolve trunk %s: %s", call_id, trunk.host, exc)
            self.calls.end(leg, EndReason.NETWORK_ERROR)
            return leg
        leg.session.dest = dest
        rtp.signalling_ip = dest[0]  # symmetric RTP may latch to the trunk's IP too
        offer = self.builder.sdp(rtp, leg.session.sdp_version, None)
        self._send_invite(leg, offer, [])
        self.background.spawn(self._run(leg, offer, ring_timeout), f"sip-outbound-{call_id}")
        return leg

    def _send_invite(self, leg: SipLeg, offer: bytes, auth: list[tuple[str, str]]) -> ClientTransaction:
        invite = self.builder.invite(leg.dialog, leg.local_number, offer, auth)
        txn = self.transactions.start_client(invite, leg.session.dest,
                                             on_provisional=lambda r: self._on_provisional(leg, r))
        leg.session.invite_txn = txn
        return txn

    def _on_provisional(self, leg: SipLeg, resp: Response) -> None:
        if resp.status == 100:
            leg.session.trying()  # a CANCEL may go out now (the INVITE's Timer B stopped too)
            self._cancel_if_due(leg)
            return
        leg.session.provisional()
        tag = resp.to.tag
        if tag and leg.dialog.remote.tag is None:
            leg.dialog.remote.params["tag"] = tag  # early dialog
        if resp.body and resp.content_type == "application/sdp" and leg.answered_at is None:
            try:
                if leg.rtp.srtp is not None:
                    leg.rtp.srtp.accept_answer(resp.body)
                self.media.start_leg(leg, negotiate(parse_sdp(resp.body)))
                leg.rtp.set_sending(False)  # early media is one-way: we listen until the answer
            except SdpError as exc:
                log.info("call %s: ignoring unusable early-media SDP: %s", leg.call_id, exc)
        self._cancel_if_due(leg)

    def request_cancel(self, leg: SipLeg, reason: str) -> None:
        """Give up the unanswered call: CANCEL now if the callee answered provisionally, else once it does."""
        leg.session.request_cancel(reason)
        self._cancel_if_due(leg)

    def _cancel_if_due(self, leg: SipLeg) -> None:
        txn = leg.session.invite_txn
        if txn is None or not leg.session.take_cancel():
            return
        cancel = self.transactions.start_client(self.builder.cancel(txn.request), leg.session.dest)
        txn.cancelled()  # no 487 within 64·T1 of the CANCEL: the INVITE is given up (RFC 3261 §9.1)
        self.background.spawn(_await_quietly(cancel.final), f"sip-cancel-{leg.call_id}")

    async def _run(self, leg: SipLeg, offer: bytes, ring_timeout: float) -> None:
        """Follow the INVITE to its final response: answered, challenged (retry once per challenge kind), or not."""
        session = leg.session
        ring = asyncio.get_running_loop().call_later(ring_timeout, self.request_cancel, leg, EndReason.NO_ANSWER)
        auth: list[tuple[str, str]] = []
        answered_challenges: set[int] = set()
        try:
            while True:
                txn = session.invite_txn
                assert txn is not None
                try:
                    resp = await txn.final
                except TransactionTimeout:
                    reason = session.cancel_reason or EndReason.NETWORK_ERROR
                    self.calls.end(leg, reason, 408 if reason == EndReason.NETWORK_ERROR else None)
                    return
                if resp.status < 300:
                    await self._on_answer(leg, resp, txn)
                    return
                if resp.status in (401, 407) and session.cancel_reason is None:
                    header = self._answer_challenge(leg, resp, answered_challenges)
                    if header is None:
                        self.calls.end(leg, EndReason.AUTH_FAILED, resp.status)
                        return
                    auth = [(n, v) for n, v in auth if n != header[0]] + [header]
                    self._send_invite(leg, offer, auth)
                    continue
                outcome = (session.cancel_reason if resp.status == 487 and session.cancel_reason
                           else outcome_for_status(resp.status))
                self.calls.end(leg, outcome, resp.status)
                return
        finally:
            ring.cancel()

    def _answer_challenge(self, leg: SipLeg, resp: Response, answered: set[int]) -> tuple[str, str] | None:
        """The (Proxy-)Authorization header answering a 401/407, or None when we cannot (or did already)."""
        challenge = resp.headers.get("WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate")
        trunk = leg.trunk
        if challenge is None or trunk is None or trunk.username is None or resp.status in answered:
            return None
        answered.add(resp.status)
        try:
            value = authorization(challenge, username=trunk.username, password=trunk.password or "",
                                  method="INVITE", uri=leg.dialog.remote_target)
        except DigestError as exc:
            log.info("call %s: cannot answer challenge: %s", leg.call_id, exc)
            return None
        return ("Authorization" if resp.status == 401 else "Proxy-Authorization", value)

    async def _on_answer(self, leg: SipLeg, resp: Response, txn: ClientTransaction) -> None:
        d = leg.dialog
        session = leg.session
        d.remote.params["tag"] = resp.to.tag
        contact = resp.headers.get("Contact")
        if contact:
            d.remote_target = parse_name_addr(contact).uri
        d.route_set = list(reversed(resp.headers.get_all("Record-Route")))
        d.confirmed = True
        hop = d.next_hop()
        dest = await self.resolve(hop.host, hop.port or 5060)
        session.dest = dest
        ack = self.builder.ack(d, txn.request.cseq[0]).to_bytes()
        session.ack = (ack, dest)
        self.transactions.send(ack, dest)
        if session.cancel_reason is not None:
            # Answered while our CANCEL was in flight: the call exists, so end it with a BYE.
            session.confirm(resp.status)
            self.in_dialog.bye(leg, session.cancel_reason)
            return
        try:
            negotiated = negotiate(parse_sdp(resp.body))
            if leg.rtp.srtp is not None:
                leg.rtp.srtp.accept_answer(resp.body)  # their key; no matching crypto line: no call
        except SdpError as exc:
            log.info("call %s: answer has no usable codec: %s", leg.call_id, exc)
            session.confirm(resp.status)
            self.in_dialog.bye(leg, EndReason.NO_USABLE_CODEC)
            return
        leg.rtp.confirm()  # the 2xx confirmed the dialog: our media may go to the answer's address
        self.media.start_leg(leg, negotiated)
        session.answer(resp.status)

    def on_stray_2xx(self, resp: Response) -> None:
        """A retransmitted 2xx to an INVITE whose transaction is gone: the dialog re-sends its ACK."""
        leg = self.calls.legs.get(resp.call_id)
        if leg is not None and resp.cseq[1] == "INVITE" and 200 <= resp.status < 300 and leg.session.ack is not None:
            self.transactions.send(*leg.session.ack)


async def _await_quietly(fut: asyncio.Future[Response]) -> None:
    try:
        await fut
    except TransactionTimeout:
        pass
