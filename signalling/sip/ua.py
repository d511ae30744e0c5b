"""The SIP user agent: one asyncio UDP endpoint serving every call of a worker (RFC 3261 subset).

    ua = await SipUserAgent.start(bind=("127.0.0.1", 5060), resolver=resolve, on_incoming=queue)
    leg = await ua.dial("+15551234567", Trunk.parse("sip:alice:secret@127.0.0.1:5070"))
    result = await leg.answered          # CallResult(answered, outcome, sip_status)
    reason = await leg.ended             # "remote_hangup", "agent_hangup", "transferred", ...

This is the façade over the layers of RFC 3261 §5 (and PJSIP): the transport (endpoint.py), the transaction
layer (transaction.py), the message builder and capability table (builder.py), the UAC (uac.py) and UAS
(uas.py) cores, the INVITE session (session.py), in-dialog requests (in_dialog.py), REFER (transfer.py) and the
batched RTP media engine on the shared clock (media_engine.py). Requests are routed to their layer here.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from media.end_reason import EndReason
from media.pacing import MediaClock
from signalling.sip.admission import Admission
from signalling.sip.background import Background
from signalling.sip.builder import ALLOW, MessageBuilder, Reply, capability_headers
from signalling.sip.calls import CallTable
from signalling.sip.endpoint import SipEndpoint, local_ip_for_default_route
from signalling.sip.in_dialog import InDialog
from signalling.sip.leg import SipLeg
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import Request, Response, SipParseError
from signalling.sip.routing import Resolver
from signalling.sip.stream_transport import StreamOptions, open_streams
from signalling.sip.transaction import Address, ServerTransaction, Timers, TransactionLayer, server_key
from signalling.sip.transfer import Transfers
from signalling.sip.trunk import Trunk
from signalling.sip.uac import Uac
from signalling.sip.uas import OnIncoming, Uas

log = logging.getLogger(__name__)

DEFAULT_TIMERS = Timers()  # RFC 3261's T1 0.5 s, T2 4 s, T4 5 s


class SipUserAgent:
    def __init__(self, *, public_host: str, public_port: int, rtp_host: str, rtp_ports: tuple[int, int],
                 clock: MediaClock, own_clock: bool, resolver: Resolver | None, on_incoming: OnIncoming | None,
                 timers: Timers, linger: float) -> None:
        self.clock = clock
        self.timers = timers
        self._own_clock = own_clock  # a clock we made (no shared one given) is ours to stop
        self.endpoint = SipEndpoint(self._on_request, self._on_response)
        self.transactions = TransactionLayer(self.endpoint, timers)
        self.builder = MessageBuilder(public_host, public_port)
        self.background = Background()
        self.media = RtpMediaEngine(clock)
        self.calls = CallTable(self.media, self.background, linger)
        self.in_dialog = InDialog(self.builder, self.transactions, self.endpoint.resolve, self.calls, self.background)
        self.uac = Uac(self, self.builder, self.transactions, self.endpoint.resolve, self.calls, self.media,
                       self.in_dialog, self.background, rtp_host, rtp_ports)
        self.uas = Uas(self, self.builder, self.transactions, self.calls, self.media, self.background,
                       self.hangup_leg, timers, rtp_host, rtp_ports, resolver, on_incoming)
        self.transfers = Transfers(self.in_dialog, self.calls)
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def start(cls, bind: tuple[str, int] = ("127.0.0.1", 5060), public_address: str | None = None,
                    rtp_ports: tuple[int, int] = (20000, 30000), clock: MediaClock | None = None,
                    on_incoming: OnIncoming | None = None, resolver: Resolver | None = None,
                    timers: Timers = DEFAULT_TIMERS, linger: float = 5.0,
                    admission: Admission | None = None, streams: StreamOptions | None = None) -> SipUserAgent:
        """Bind the SIP socket and start the media task.

        `public_address` ("host" or "host:port") goes into Via, Contact and SDP when behind NAT.
        `resolver(invite)` decides inbound calls (`InboundInvite`: user parts, headers, source); accepted legs
        go to `on_incoming` (a callable, sync or async, or an asyncio.Queue). `linger`: how long an ended call
        still answers retransmissions and absorbs late RTP. `admission`: who may call us (None: everyone).
        `streams`: SIP over TCP/TLS (listening ports, TLS contexts); outbound streams to trunks work without it.
        """
        host, port = bind
        public_host: str | None = None
        public_port: int | None = None
        if public_address:
            h, sep, p = public_address.rpartition(":")
            public_host, public_port = (h, int(p)) if sep and p.isdigit() else (public_address, None)
        ua = cls(public_host=public_host or host, public_port=public_port or port, rtp_host=host, rtp_ports=rtp_ports,
                 clock=clock or MediaClock(), own_clock=clock is None, resolver=resolver, on_incoming=on_incoming,
                 timers=timers, linger=linger)
        ua.uas.admission = admission
        await ua.endpoint.listen(host, port)
        ua.endpoint.streams = await open_streams(ua.endpoint.datagram_received, streams or StreamOptions())
        bound_host, bound_port = ua.endpoint.local_address
        if public_host is None:
            ua.builder.public_host = local_ip_for_default_route() if bound_host in ("0.0.0.0", "") else bound_host
        if public_port is None:
            ua.builder.public_port = bound_port
        ua.media.start()
        return ua

    @property
    def local_address(self) -> Address:
        return self.endpoint.local_address

    @property
    def legs(self) -> dict[str, SipLeg]:
        """The calls by Call-ID, kept for `linger` seconds after their end."""
        return self.calls.legs

    @property
    def handler_errors(self) -> int:
        """Failures caught while handling datagrams, in background tasks and in media ticks (0 when healthy)."""
        return self.endpoint.handler_errors + self.background.errors + self.media.tick_errors

    @property
    def malformed_datagrams(self) -> int:
        return self.endpoint.malformed_datagrams

    @property
    def resolver(self) -> Resolver | None:
        """Decides inbound calls: `async (InboundInvite) -> Decision` (None: accept every call)."""
        return self.uas.resolver

    @resolver.setter
    def resolver(self, resolver: Resolver | None) -> None:
        self.uas.resolver = resolver

    @property
    def on_incoming(self) -> OnIncoming | None:
        """Where accepted inbound legs go (None: every call is answered 480)."""
        return self.uas.on_incoming

    @on_incoming.setter
    def on_incoming(self, on_incoming: OnIncoming | None) -> None:
        self.uas.on_incoming = on_incoming

    async def close(self) -> None:
        """Hang up every call (BYE/CANCEL, up to 1 s for their answers), stop media, close the sockets."""
        if self.closed:
            return
        for leg in list(self.calls.legs.values()):
            if not leg.ended.done():
                self.background.spawn(self.hangup_leg(leg, EndReason.AGENT_HANGUP), f"sip-close-{leg.call_id}")
        await self.background.settle(1.0)  # let the BYEs and CANCELs go out (and mostly be answered)
        for leg in list(self.calls.legs.values()):
            self.calls.end(leg, EndReason.AGENT_HANGUP)  # no-op for the calls that ended
        self.closed = True
        await self.media.stop()
        if self._own_clock:
            await self.clock.stop()
        await self.background.close()
        self.transactions.close()
        self.calls.close()
        if self.endpoint.streams is not None:
            await self.endpoint.streams.close()
        self.endpoint.close()

    # ------------------------------------------------------------------ routing what arrives
    def _on_response(self, resp: Response) -> None:
        if not self.transactions.match_response(resp):
            self.uac.on_stray_2xx(resp)

    def _on_request(self, req: Request, addr: Address) -> None:
        if req.method == "ACK":
            self.uas.on_ack(req)
            return
        existing = self.transactions.server.get(server_key(req))
        if existing is not None:
            existing.retransmitted()
            return
        txn = self.transactions.start_server(req, addr)

        def reply(status: int, *, to_tag: str | None = None, body: bytes = b"", content_type: str | None = None,
                  extra: list[tuple[str, str]] | None = None) -> None:
            txn.respond(self.builder.response(req, status, to_tag=to_tag, body=body, content_type=content_type,
                                              extra=extra, source=addr))

        try:
            self._route(req, addr, txn, reply)
        except (SipParseError, ValueError) as exc:
            log.debug("bad %s from %s: %s", req.method, addr, exc)
            if txn.final_status is None:
                reply(400)

    def _route(self, req: Request, addr: Address, txn: ServerTransaction, reply: Reply) -> None:
        method = req.method
        if method == "INVITE":
            self.uas.on_invite(req, addr, txn, reply)
        elif method == "BYE":
            self.in_dialog.on_bye(req, reply)
        elif method == "CANCEL":
            self.uas.on_cancel(req, reply)
        elif method == "OPTIONS":
            reply(200, extra=capability_headers())
        elif method == "NOTIFY":
            self.transfers.on_notify(req, reply)
        elif method == "INFO":
            self.in_dialog.on_info(req, reply)
        else:  # REFER included: we do not take transfers from the far end (docs/sip.md)
            reply(405, extra=[("Allow", ALLOW)])

    # ------------------------------------------------------------------ what callers do
    async def dial(self, to_number: str, trunk: Trunk | str, from_number: str | None = None,
                   display_name: str | None = None, ring_timeout: float = 60.0, context: Any = None) -> SipLeg:
        """Start an outbound call; returns once the INVITE is sent. See `leg.answered` and `leg.ended`."""
        if isinstance(trunk, str):
            trunk = Trunk.parse(trunk)
        return await self.uac.dial(to_number, trunk, from_number, display_name, ring_timeout, context)

    async def hangup_leg(self, leg: SipLeg, reason: str) -> None:
        if leg.ended.done():
            return
        if leg.direction == "outbound" and leg.answered_at is None:
            self.uac.request_cancel(leg, reason)
            if not leg.session.ringing:
                # Nothing heard back yet, so no CANCEL may go out (RFC 3261 §9.1); once a response
                # arrives it is cancelled or BYE'd by the INVITE task. The leg ends now either way.
                self.calls.end(leg, reason)
                return
            try:
                await asyncio.wait_for(asyncio.shield(leg.ended), timeout=self.timers.b)
            except TimeoutError:
                self.calls.end(leg, reason)
            return
        acked = leg.session.acked
        if acked is not None and not acked.is_set():
            try:  # the callee may not send BYE before our 200 was ACKed (RFC 3261 §15)
                await asyncio.wait_for(acked.wait(), timeout=self.timers.b)
            except TimeoutError:
                pass
            if leg.ended.done():  # ended meanwhile (their BYE, or Timer H: no ACK): no second BYE
                return
        self.in_dialog.bye(leg, reason)

    async def transfer_leg(self, leg: SipLeg, target: str) -> None:
        """Blind transfer by REFER; raises TransferFailed (media.leg) with the call still up when it fails."""
        await self.transfers.transfer(leg, target)

    async def send_dtmf(self, leg: SipLeg, digits: str) -> None:
        await self.in_dialog.send_dtmf(leg, digits)
