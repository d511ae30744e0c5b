"""The UAS side: an inbound INVITE (routing decision, answer, 2xx retransmitted until the ACK), a re-INVITE
(hold/resume, session refresh), the ACK, and a CANCEL of an INVITE we have not answered yet."""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from media.end_reason import EndReason
from signalling.sip.admission import Admission
from signalling.sip.background import Background
from signalling.sip.builder import ALLOW, MessageBuilder, Reply
from signalling.sip.calls import CallTable
from signalling.sip.dialog import Dialog, new_tag
from signalling.sip.leg import SipControl, SipLeg
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import Request, parse_name_addr
from signalling.sip.routing import Decision, InboundInvite, Resolver
from signalling.sip.rtp import RtpSession
from signalling.sip.sdp import Negotiated, SdpError, negotiate, parse_sdp
from signalling.sip.srtp import SrtpContext
from signalling.sip.transaction import (
    UNANSWERED_RETRANSMITS,
    Address,
    ServerTransaction,
    Timers,
    TransactionLayer,
    server_key,
)

log = logging.getLogger(__name__)

OnIncoming = Callable[[SipLeg], Awaitable[None] | None] | asyncio.Queue[SipLeg]
Hangup = Callable[[SipLeg, str], Coroutine[Any, Any, None]]


class Uas:
    def __init__(self, control: SipControl, builder: MessageBuilder, transactions: TransactionLayer,
                 calls: CallTable, media: RtpMediaEngine, background: Background, hangup: Hangup, timers: Timers,
                 rtp_host: str, rtp_ports: tuple[int, int], resolver: Resolver | None,
                 on_incoming: OnIncoming | None) -> None:
        self.control = control
        self.builder = builder
        self.transactions = transactions
        self.calls = calls
        self.media = media
        self.background = background
        self.hangup = hangup
        self.timers = timers
        self.rtp_host = rtp_host
        self.rtp_ports = rtp_ports
        self.resolver = resolver
        self.on_incoming = on_incoming
        self.admission: Admission | None = None  # who may call us (None: everyone)

    # ---- INVITE
    def on_invite(self, req: Request, addr: Address, txn: ServerTransaction, reply: Reply) -> None:
        if req.to.tag is not None:
            leg = self.calls.dialog_leg(req)
            if leg is None or leg.ended.done():
                reply(481)
                return
            self._on_reinvite(leg, req, txn, reply)
            return
        if req.call_id in self.calls.legs:
            reply(482)  # a second INVITE for a call we already have (a fork or a loop)
            return
        refusal = self.admission.check(req, addr, txn, self.calls.legs.values()) if self.admission else None
        if refusal is not None:
            reply(refusal.status, to_tag=new_tag(), extra=list(refusal.headers))
            return
        reply(100)
        self.background.spawn(self._answer(req, addr, txn), f"sip-inbound-{req.call_id}")

    async def _decide(self, invite: InboundInvite) -> Decision:
        if self.on_incoming is None:
            return Decision.reject(480)
        if self.resolver is None:
            return Decision.accept()
        try:
            return await self.resolver(invite)
        except Exception:
            log.exception("inbound call resolver failed for %s", invite.to_user)
            return Decision.reject(500)

    async def _answer(self, req: Request, addr: Address, txn: ServerTransaction) -> None:
        def reply(status: int, to_tag: str) -> None:
            txn.respond(self.builder.response(req, status, to_tag=to_tag, source=addr))

        to_tag = new_tag()
        try:
            negotiated = negotiate(parse_sdp(req.body)) if req.body else None
            srtp = SrtpContext.for_offer(req.body) if req.body else None  # RTP/SAVP + a=crypto: SRTP
        except SdpError as exc:
            log.info("inbound call %s: %s", req.call_id, exc)
            reply(488, to_tag=to_tag)
            return
        invite = InboundInvite.of(req, addr)
        decision = await self._decide(invite)
        if txn.cancelled:
            return
        if decision.status != 200:
            reply(decision.status, to_tag=to_tag)
            return
        try:
            rtp = await RtpSession.open(self.rtp_host, self.rtp_ports)
        except OSError as exc:
            log.error("inbound call %s: no RTP port: %s", req.call_id, exc)
            reply(503, to_tag=to_tag)
            return
        rtp.srtp = srtp
        if txn.cancelled:
            rtp.close()
            return
        leg = self._new_leg(req, addr, to_tag, rtp, invite, decision)
        session = leg.session
        # Offerless INVITE: our offer goes in the 200, their answer comes in the ACK.
        body = self.builder.sdp(rtp, session.sdp_version, negotiated)
        if negotiated is not None:
            self.media.start_leg(leg, negotiated)
        contact = self.builder.contact(invite.to_user or "talkwire")
        ok = self.builder.response(req, 200, to_tag=to_tag, body=body, content_type="application/sdp",
                                   extra=[("Contact", contact), ("Allow", ALLOW)], source=addr)
        txn.respond(ok)
        leg.dialog.confirmed = True
        session.answer(200)
        self.background.spawn(self._retransmit_2xx(leg, session.expect_ack(), ok.to_bytes(), addr),
                              f"sip-2xx-{req.call_id}")
        self._hand_over(leg)

    def _new_leg(self, req: Request, addr: Address, to_tag: str, rtp: RtpSession, invite: InboundInvite,
                 decision: Decision) -> SipLeg:
        local = req.to
        local.params["tag"] = to_tag
        contact = req.headers.get("Contact")
        dialog = Dialog(
            call_id=req.call_id, local=local, remote=req.from_,
            remote_target=parse_name_addr(contact).uri if contact else req.from_.uri,
            local_cseq=random.randrange(1, 10_000), remote_cseq=req.cseq[0],
            route_set=req.headers.get_all("Record-Route"), peer=addr,
        )
        rtp.signalling_ip = addr[0]  # symmetric RTP may latch to the caller's signalling IP (NAT)
        leg = SipLeg(self.control, direction="inbound", dialog=dialog, rtp=rtp, remote_number=invite.from_user,
                     local_number=invite.to_user, display_name=req.from_.display or None,
                     context=decision.context, invite=invite)
        rtp.on_dtmf = leg.deliver_dtmf
        self.calls.add(leg)
        return leg

    def _hand_over(self, leg: SipLeg) -> None:
        target = self.on_incoming
        if isinstance(target, asyncio.Queue):
            target.put_nowait(leg)
        elif target is not None:
            result = target(leg)
            if inspect.isawaitable(result):
                self.background.spawn(_awaited(result), f"sip-incoming-{leg.call_id}")

    async def _retransmit_2xx(self, leg: SipLeg, acked: asyncio.Event, data: bytes, dest: Address) -> None:
        """RFC 3261 §13.3.1.4: re-send the 2xx until the ACK comes (a few times: a source that never answers
        gets no more), and without one by Timer H (64·T1) end the call as `network_error` with a BYE. Until the
        ACK no media goes out (RtpSession.confirm)."""
        interval = self.timers.t1
        resends = UNANSWERED_RETRANSMITS
        deadline = asyncio.get_running_loop().time() + self.timers.b
        while not acked.is_set():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.info("call %s: no ACK for our 200 OK", leg.call_id)
                leg.session.ack_timed_out()  # nobody waits for that ACK any more
                await self.hangup(leg, EndReason.NETWORK_ERROR)
                return
            try:
                await asyncio.wait_for(acked.wait(), timeout=min(interval, remaining))
            except TimeoutError:
                if leg.ended.done():
                    return
                if resends > 0:
                    resends -= 1
                    self.transactions.send(data, dest)
                    interval = min(interval * 2, self.timers.t2)
                else:
                    interval = remaining

    def _on_reinvite(self, leg: SipLeg, req: Request, txn: ServerTransaction, reply: Reply) -> None:
        """Hold/resume or session refresh: apply their SDP, answer with ours."""
        cseq = req.cseq[0]
        if leg.dialog.remote_cseq is not None and cseq <= leg.dialog.remote_cseq:
            reply(500, extra=[("Retry-After", "1")])
            return
        leg.dialog.remote_cseq = cseq
        negotiated = None
        if req.body:
            try:
                negotiated = self.apply_remote_sdp(leg, req.body)
            except SdpError as exc:
                log.info("call %s: re-INVITE with unusable SDP: %s", leg.call_id, exc)
                reply(488)
                return
        session = leg.session
        body = self.builder.sdp(leg.rtp, session.next_sdp_version(), negotiated or leg.rtp.negotiated)
        acked = session.expect_ack()
        ok = self.builder.response(req, 200, body=body, content_type="application/sdp",
                                   extra=[("Contact", self.builder.contact(leg.local_number or "talkwire"))],
                                   source=txn.source)
        txn.respond(ok)
        self.background.spawn(self._retransmit_2xx(leg, acked, ok.to_bytes(), txn.source), f"sip-2xx-{leg.call_id}")

    def apply_remote_sdp(self, leg: SipLeg, body: bytes) -> Negotiated:
        negotiated = negotiate(parse_sdp(body))
        leg.session.hold(negotiated.direction in ("recvonly", "inactive") or not negotiated.we_send)
        self.media.start_leg(leg, negotiated)
        return negotiated

    # ---- ACK and CANCEL
    def on_ack(self, req: Request) -> None:
        # ACK for a non-2xx final response matches the INVITE server transaction.
        txn = self.transactions.server.get(server_key(req))
        if txn is not None and txn.final_status is not None and txn.final_status >= 300:
            txn.ack_received()
            return
        leg = self.calls.dialog_leg(req)
        if leg is None:
            return
        leg.session.ack_received()
        leg.rtp.confirm()
        if req.body and req.content_type == "application/sdp":
            try:
                self.apply_remote_sdp(leg, req.body)
            except SdpError as exc:
                log.info("call %s: unusable SDP in ACK (%s): hanging up", leg.call_id, exc)
                self.background.spawn(self.hangup(leg, EndReason.NO_USABLE_CODEC), "sip-bye")

    def on_cancel(self, req: Request, reply: Reply) -> None:
        invite_txn = self.transactions.server.get((*server_key(req)[:2], "INVITE"))
        if invite_txn is None:
            reply(481)
            return
        reply(200)
        if invite_txn.final_status is None:
            invite_txn.cancelled = True
            invite_txn.respond(self.builder.response(invite_txn.request, 487, to_tag=new_tag(),
                                                     source=invite_txn.source))


async def _awaited(result: Awaitable[None]) -> None:
    await result
