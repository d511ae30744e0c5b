"""The SIP user agent: one asyncio UDP endpoint serving every call of a worker (RFC 3261 subset).

    ua = await SipUserAgent.start(bind=("127.0.0.1", 5060), resolver=resolve, on_incoming=queue)
    leg = await ua.dial("+15551234567", Trunk.parse("sip:alice:secret@127.0.0.1:5070"))
    result = await leg.answered          # CallResult(answered, outcome, sip_status)
    reason = await leg.ended             # "remote_hangup", "agent_hangup", "transferred", ...

Every datagram goes through `datagram_received`, which never raises: a malformed message is
counted and dropped (a parseable request with bad content gets a 400). Media for all calls is
driven by one task on the shared MediaClock: per tick it pops each call's inbound frame from its
jitter buffer, and encodes every call's outbound frame in one array operation before sending.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import ipaddress
import logging
import random
import select
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from media import g711
from media.frames import AudioFrame
from media.jitter import MISSING
from media.pacing import MediaClock
from signalling.sip import dtmf as dtmf_mod
from signalling.sip.dialog import Dialog, new_branch, new_call_id, new_tag
from signalling.sip.digest import DigestError, authorization
from signalling.sip.leg import (
    AGENT_HANGUP, ANSWERED, AUTH_FAILED, NETWORK_ERROR, NO_ANSWER, NO_USABLE_CODEC, REMOTE_HANGUP,
    TRANSFERRED, CallResult, SipLeg, TransferFailed, outcome_for_status,
)
from signalling.sip.message import (
    Headers, NameAddr, Request, Response, SipParseError, parse, parse_name_addr, parse_uri,
)
from signalling.sip.rtp import FRAME_SAMPLES, RtpSession
from signalling.sip.sdp import Negotiated, SdpError, build_sdp, negotiate, parse_sdp
from signalling.sip.transaction import (
    ClientTransaction, ServerTransaction, Timers, TransactionTimeout, invite_companion_headers, server_key,
)
from signalling.sip.trunk import Trunk

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO"
USER_AGENT = "Talkwire"
REASONS = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
}


@dataclass(frozen=True)
class Decision:
    """The resolver's answer for an inbound INVITE: status 200 accepts (with `context` for the agent)."""

    status: int = 200
    context: Any = None

    @classmethod
    def accept(cls, context: Any = None) -> "Decision":
        return cls(200, context)

    @classmethod
    def reject(cls, status: int = 404) -> "Decision":
        return cls(status)


Resolver = Callable[[str, str], Awaitable[Decision]]
OnIncoming = Callable[[SipLeg], Any] | asyncio.Queue


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _user_of(uri: str) -> str:
    """The user part (the phone number) of a sip:/tel: URI; "" when there is none or it is unparseable."""
    try:
        return parse_uri(uri).user or ""
    except SipParseError:
        return ""


def _local_ip_for_default_route() -> str:
    """The address other hosts reach us on when bound to 0.0.0.0 (connect() on UDP sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class SipUserAgent(asyncio.DatagramProtocol):
    def __init__(self, *, public_host: str, public_port: int, rtp_host: str, rtp_ports: tuple[int, int],
                 clock: MediaClock, resolver: Resolver | None, on_incoming: OnIncoming | None,
                 timers: Timers, linger: float) -> None:
        self.public_host = public_host
        self.public_port = public_port
        self.rtp_host = rtp_host
        self.rtp_ports = rtp_ports
        self.clock = clock
        self.resolver = resolver
        self.on_incoming = on_incoming
        self.timers = timers
        self.linger = linger
        self.transport: asyncio.DatagramTransport | None = None
        self.client_transactions: dict[tuple, ClientTransaction] = {}
        self.server_transactions: dict[tuple, ServerTransaction] = {}
        self.legs: dict[str, SipLeg] = {}  # by Call-ID, kept for `linger` seconds after the end
        self._media_legs: list[SipLeg] = []
        # Which calls' RTP sockets have datagrams waiting: one poll per tick instead of a read attempt
        # (and a would-block error) per call. epoll where there is one; poll() elsewhere.
        self._rtp_poller = select.epoll() if hasattr(select, "epoll") else select.poll()
        self._rtp_by_fd: dict[int, RtpSession] = {}
        self._tasks: set[asyncio.Task] = set()
        self._handles: set[asyncio.TimerHandle] = set()
        self._media_task: asyncio.Task | None = None
        self._addr_cache: dict[tuple[str, int], tuple[str, int]] = {}
        self.malformed_datagrams = 0
        self.handler_errors = 0
        self.send_lags: collections.deque[float] = collections.deque(maxlen=100_000)
        self._own_clock = False  # a clock we made (no shared one given) is ours to stop
        self.closed = False

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def start(cls, bind: tuple[str, int] = ("127.0.0.1", 5060), public_address: str | None = None,
                    rtp_ports: tuple[int, int] = (20000, 30000), clock: MediaClock | None = None,
                    on_incoming: OnIncoming | None = None, resolver: Resolver | None = None,
                    timers: Timers = Timers(), linger: float = 5.0) -> "SipUserAgent":
        """Bind the SIP socket and start the media task.

        `public_address` ("host" or "host:port") goes into Via, Contact and SDP when behind NAT.
        `resolver(to_user, from_user)` decides inbound calls; accepted legs go to `on_incoming`
        (a callable, sync or async, or an asyncio.Queue). `linger`: how long an ended call still
        answers retransmissions and absorbs late RTP.
        """
        loop = asyncio.get_running_loop()
        host, port = bind
        public_host: str | None = None
        public_port: int | None = None
        if public_address:
            h, sep, p = public_address.rpartition(":")
            public_host, public_port = (h, int(p)) if sep and p.isdigit() else (public_address, None)
        ua = cls(public_host=public_host or host, public_port=public_port or port, rtp_host=host, rtp_ports=rtp_ports,
                 clock=clock or MediaClock(), resolver=resolver, on_incoming=on_incoming, timers=timers, linger=linger)
        ua._own_clock = clock is None
        transport, _ = await loop.create_datagram_endpoint(lambda: ua, local_addr=(host, port))
        ua.transport = transport
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        if public_host is None:
            ua.public_host = _local_ip_for_default_route() if bound_host in ("0.0.0.0", "") else bound_host
        if public_port is None:
            ua.public_port = bound_port
        ua._media_task = loop.create_task(ua._media_loop(), name="sip-media")
        return ua

    @property
    def local_address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    async def close(self) -> None:
        """Hang up every call (BYE/CANCEL, up to 1 s for their answers), stop media, close the sockets."""
        if self.closed:
            return
        for leg in list(self.legs.values()):
            if not leg.ended.done():
                self._spawn(self.hangup_leg(leg, AGENT_HANGUP), f"sip-close-{leg.call_id}")
        if self._tasks:  # let the BYEs and CANCELs go out (and mostly be answered), all calls at once
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for leg in list(self.legs.values()):
            self._end(leg, AGENT_HANGUP)  # no-op for the calls that ended
        self.closed = True
        if self._media_task is not None:
            self._media_task.cancel()
            await asyncio.gather(self._media_task, return_exceptions=True)
        if self._own_clock:
            await self.clock.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handle in self._handles:
            handle.cancel()
        for txn in list(self.client_transactions.values()):
            txn.terminate()
        for stxn in list(self.server_transactions.values()):
            stxn.terminate()
        for leg in self.legs.values():
            leg.rtp.close()
        self.legs.clear()
        self._rtp_poller.close()
        if self.transport is not None:
            self.transport.close()

    def _spawn(self, coro: Awaitable, name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.handler_errors += 1
            log.error("SIP task %s failed", task.get_name(), exc_info=task.exception())

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        handle: asyncio.TimerHandle

        def run() -> None:
            self._handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._handles.add(handle)

    # ------------------------------------------------------------------ transport
    def send_raw(self, data: bytes, dest: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, dest)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self._dispatch(data, (addr[0], addr[1]))
        except Exception:
            self.handler_errors += 1
            log.exception("error handling a SIP datagram from %s", addr)

    async def _resolve(self, host: str, port: int) -> tuple[str, int]:
        if _is_ip(host):
            return host, port
        key = (host, port)
        if key not in self._addr_cache:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            self._addr_cache[key] = infos[0][4][:2]
        return self._addr_cache[key]

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.public_host}:{self.public_port};branch={new_branch()};rport"

    def _contact(self, user: str) -> str:
        return f"<sip:{user}@{self.public_host}:{self.public_port}>"

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = parse(data)
        except SipParseError as exc:
            self.malformed_datagrams += 1
            log.debug("malformed SIP datagram from %s: %s", addr, exc)
            return
        if isinstance(msg, Response):
            self._on_response(msg)
        else:
            self._on_request(msg, addr)

    def _on_response(self, resp: Response) -> None:
        via = resp.top_via
        txn = self.client_transactions.get((via.branch or "", resp.cseq[1]))
        if txn is not None:
            txn.receive(resp)
            return
        # A retransmitted 2xx to an INVITE whose transaction is gone: the dialog re-sends its ACK.
        leg = self.legs.get(resp.call_id)
        if leg is not None and resp.cseq[1] == "INVITE" and 200 <= resp.status < 300:
            if leg._ack is not None:
                self.send_raw(*leg._ack)

    def _response(self, req: Request, status: int, *, to_tag: str | None = None, body: bytes = b"",
                  content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                  source: tuple[str, int] | None = None) -> Response:
        headers = Headers()
        for i, via in enumerate(req.headers.get_all("Via")):
            if i == 0 and source is not None:
                parsed = req.top_via
                if "rport" in parsed.params:
                    parsed.params["rport"] = str(source[1])
                    parsed.params["received"] = source[0]
                elif parsed.host != source[0]:
                    parsed.params["received"] = source[0]
                via = str(parsed)
            headers.add("Via", via)
        headers.add("From", req.headers.get("From") or "")
        to = req.headers.get("To") or ""
        if to_tag and parse_name_addr(to).tag is None and status > 100:
            to = f"{to};tag={to_tag}"
        headers.add("To", to)
        headers.add("Call-ID", req.call_id)
        headers.add("CSeq", req.headers.get("CSeq") or "")
        if req.method == "INVITE" and 100 < status < 300:
            for rr in req.headers.get_all("Record-Route"):
                headers.add("Record-Route", rr)
        headers.add("Server", USER_AGENT)
        for name, value in extra or []:
            headers.add(name, value)
        if content_type:
            headers.add("Content-Type", content_type)
        return Response(headers, body, status, REASONS.get(status, "Unknown"))

    def _on_request(self, req: Request, addr: tuple[str, int]) -> None:
        if req.method == "ACK":
            self._on_ack(req)
            return
        key = server_key(req)
        existing = self.server_transactions.get(key)
        if existing is not None:
            existing.retransmitted()
            return
        txn = ServerTransaction(self, req, addr)
        txn.start()

        def reply(status: int, **kw: Any) -> None:
            txn.respond(self._response(req, status, source=addr, **kw))

        try:
            handler = {
                "INVITE": self._on_invite, "BYE": self._on_bye, "CANCEL": self._on_cancel,
                "OPTIONS": self._on_options, "NOTIFY": self._on_notify, "INFO": self._on_info,
            }.get(req.method)
            if handler is None:
                reply(405, extra=[("Allow", ALLOW)])
                return
            handler(req, addr, txn, reply)
        except (SipParseError, ValueError) as exc:
            log.debug("bad %s from %s: %s", req.method, addr, exc)
            if txn.final_status is None:
                reply(400)

    def _dialog_leg(self, req: Request) -> SipLeg | None:
        leg = self.legs.get(req.call_id)
        if leg is None or not leg.dialog.matches(req.from_.tag, req.to.tag):
            return None
        return leg

    # ------------------------------------------------------------------ inbound requests
    def _on_options(self, req: Request, addr, txn, reply) -> None:
        reply(200, extra=[("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "replaces")])

    def _on_ack(self, req: Request) -> None:
        # ACK for a non-2xx final response matches the INVITE server transaction.
        txn = self.server_transactions.get(server_key(req))
        if txn is not None and txn.final_status is not None and txn.final_status >= 300:
            txn.ack_received()
            return
        leg = self._dialog_leg(req)
        if leg is None:
            return
        if leg._acked is not None:
            leg._acked.set()
        if req.body and req.content_type == "application/sdp":
            try:
                self._apply_remote_sdp(leg, req.body)
            except SdpError as exc:
                log.info("call %s: unusable SDP in ACK (%s): hanging up", leg.call_id, exc)
                self._spawn(self.hangup_leg(leg, NO_USABLE_CODEC), "sip-bye")

    def _on_bye(self, req: Request, addr, txn, reply) -> None:
        leg = self._dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        self._end(leg, REMOTE_HANGUP)

    def _on_cancel(self, req: Request, addr, txn, reply) -> None:
        invite_key = (*server_key(req)[:2], "INVITE")
        invite_txn = self.server_transactions.get(invite_key)
        if invite_txn is None:
            reply(481)
            return
        reply(200)
        if invite_txn.final_status is None:
            invite_txn.cancelled = True
            invite_txn.respond(self._response(invite_txn.request, 487, to_tag=new_tag(), source=invite_txn.source))

    def _on_notify(self, req: Request, addr, txn, reply) -> None:
        leg = self._dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        queue = leg._notify_queue
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if queue is None or event != "refer":
            return
        state = (req.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        status = None
        if req.content_type == "message/sipfrag" and req.body:
            first = req.body.decode("utf-8", "replace").splitlines()[0] if req.body.strip() else ""
            parts = first.split()
            if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
                status = int(parts[1])
        queue.put_nowait((status, state == "terminated"))

    def _on_info(self, req: Request, addr, txn, reply) -> None:
        leg = self._dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        if req.content_type == "application/dtmf-relay":
            for line in req.body.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                digit = value.strip().upper()
                if key.strip().lower() == "signal" and len(digit) == 1 and digit in dtmf_mod.EVENTS:
                    leg.deliver_event({"type": "dtmf", "digits": digit})

    def _on_invite(self, req: Request, addr, txn: ServerTransaction, reply) -> None:
        if req.to.tag is not None:
            leg = self._dialog_leg(req)
            if leg is None or leg.ended.done():
                reply(481)
                return
            self._on_reinvite(leg, req, txn, reply)
            return
        if req.call_id in self.legs:
            reply(482)  # a second INVITE for a call we already have (a fork or a loop)
            return
        reply(100)
        self._spawn(self._answer_incoming(req, addr, txn), f"sip-inbound-{req.call_id}")

    async def _answer_incoming(self, req: Request, addr: tuple[str, int], txn: ServerTransaction) -> None:
        def reply(status: int, **kw: Any) -> None:
            txn.respond(self._response(req, status, source=addr, **kw))

        to_tag = new_tag()
        try:
            negotiated = negotiate(parse_sdp(req.body)) if req.body else None
        except SdpError as exc:
            log.info("inbound call %s: %s", req.call_id, exc)
            reply(488, to_tag=to_tag)
            return
        to_user = _user_of(req.to.uri)
        from_user = _user_of(req.from_.uri)
        if self.on_incoming is None:
            decision = Decision.reject(480)
        elif self.resolver is None:
            decision = Decision.accept()
        else:
            try:
                decision = await self.resolver(to_user, from_user)
            except Exception:
                log.exception("inbound call resolver failed for %s", to_user)
                decision = Decision.reject(500)
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
        if txn.cancelled:
            rtp.close()
            return
        local = req.to
        local.params["tag"] = to_tag
        contact = req.headers.get("Contact")
        dialog = Dialog(
            call_id=req.call_id, local=local, remote=req.from_,
            remote_target=parse_name_addr(contact).uri if contact else req.from_.uri,
            local_cseq=random.randrange(1, 10_000), remote_cseq=req.cseq[0],
            route_set=req.headers.get_all("Record-Route"), peer=addr,
        )
        leg = SipLeg(self, direction="inbound", dialog=dialog, rtp=rtp, remote_number=from_user,
                     local_number=to_user, display_name=req.from_.display or None, context=decision.context)
        leg._acked = asyncio.Event()
        rtp.on_dtmf = self._dtmf_callback(leg)
        self.legs[req.call_id] = leg
        if negotiated is None:
            # Offerless INVITE: our offer goes in the 200, their answer comes in the ACK.
            body = self._sdp(leg, None)
        else:
            body = self._sdp(leg, negotiated)
            self._start_media(leg, negotiated)
        ok = self._response(req, 200, to_tag=to_tag, body=body, content_type="application/sdp",
                            extra=[("Contact", self._contact(to_user or "talkwire")), ("Allow", ALLOW)], source=addr)
        txn.respond(ok)
        dialog.confirmed = True
        leg.answered_at = time.time()
        leg.sip_status = 200
        leg.answered.set_result(CallResult(True, ANSWERED, 200))
        self._spawn(self._retransmit_2xx(leg, ok.to_bytes(), addr), f"sip-2xx-{req.call_id}")
        self._hand_over(leg)

    def _hand_over(self, leg: SipLeg) -> None:
        target = self.on_incoming
        if isinstance(target, asyncio.Queue):
            target.put_nowait(leg)
        elif target is not None:
            result = target(leg)
            if inspect.isawaitable(result):
                self._spawn(result, f"sip-incoming-{leg.call_id}")

    async def _retransmit_2xx(self, leg: SipLeg, data: bytes, dest: tuple[str, int]) -> None:
        """RFC 3261 §13.3.1.4: re-send the 2xx until the ACK comes; without one, end the call."""
        acked = leg._acked
        assert acked is not None
        interval = self.timers.t1
        deadline = asyncio.get_running_loop().time() + self.timers.b
        while not acked.is_set():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.info("call %s: no ACK for our 200 OK", leg.call_id)
                await self.hangup_leg(leg, NETWORK_ERROR)
                return
            try:
                await asyncio.wait_for(acked.wait(), timeout=min(interval, remaining))
            except asyncio.TimeoutError:
                if leg.ended.done():
                    return
                self.send_raw(data, dest)
                interval = min(interval * 2, self.timers.t2)

    def _on_reinvite(self, leg: SipLeg, req: Request, txn: ServerTransaction, reply) -> None:
        """Hold/resume or session refresh: apply their SDP, answer with ours."""
        cseq = req.cseq[0]
        if leg.dialog.remote_cseq is not None and cseq <= leg.dialog.remote_cseq:
            reply(500, extra=[("Retry-After", "1")])
            return
        leg.dialog.remote_cseq = cseq
        negotiated = None
        if req.body:
            try:
                negotiated = self._apply_remote_sdp(leg, req.body)
            except SdpError as exc:
                log.info("call %s: re-INVITE with unusable SDP: %s", leg.call_id, exc)
                reply(488)
                return
        leg._session_version += 1
        leg._acked = asyncio.Event()
        body = self._sdp(leg, negotiated or leg.rtp.negotiated)
        ok = self._response(req, 200, body=body, content_type="application/sdp",
                            extra=[("Contact", self._contact(leg.local_number or "talkwire"))], source=txn.source)
        txn.respond(ok)
        self._spawn(self._retransmit_2xx(leg, ok.to_bytes(), txn.source), f"sip-2xx-{leg.call_id}")

    def _apply_remote_sdp(self, leg: SipLeg, body: bytes) -> Negotiated:
        negotiated = negotiate(parse_sdp(body))
        leg.on_hold = negotiated.direction in ("recvonly", "inactive") or not negotiated.we_send
        self._start_media(leg, negotiated)
        return negotiated

    # ------------------------------------------------------------------ media
    def _sdp(self, leg: SipLeg, negotiated: Negotiated | None) -> bytes:
        version = leg._session_version
        session_id = leg.rtp.ssrc
        if negotiated is None:
            return build_sdp(address=self.public_host, port=leg.rtp.local_port, session_id=session_id, version=version)
        return build_sdp(address=self.public_host, port=leg.rtp.local_port, session_id=session_id, version=version,
                         payload_types=(negotiated.payload_type,), codec=negotiated.codec,
                         dtmf_payload_type=negotiated.dtmf_payload_type,
                         direction=negotiated.direction)

    def _start_media(self, leg: SipLeg, negotiated: Negotiated) -> None:
        rtp = leg.rtp
        rtp.apply(negotiated)
        rtp.receiving = True
        rtp.sending = negotiated.we_send
        if leg not in self._media_legs:
            self._media_legs.append(leg)
            fd = rtp.sock.fileno()
            self._rtp_by_fd[fd] = rtp
            self._rtp_poller.register(fd, select.POLLIN)

    def _stop_media(self, leg: SipLeg) -> None:
        if leg in self._media_legs:
            self._media_legs.remove(leg)
            fd = leg.rtp.sock.fileno()  # the socket stays open a little longer (see _end)
            del self._rtp_by_fd[fd]
            self._rtp_poller.unregister(fd)

    def _read_rtp(self, rounds: int = 8) -> None:
        """Read the datagrams waiting on every call's RTP socket. The poller is level-triggered: a socket
        with more than one datagram waiting is reported again in the next round. A backlog beyond `rounds`
        waits for the next tick (the jitter buffer trims it anyway), so one call cannot hold up the others."""
        poll = self._rtp_poller.poll
        by_fd = self._rtp_by_fd
        for _ in range(rounds):
            ready = poll(0)
            if not ready:
                return
            for fd, _events in ready:
                rtp = by_fd.get(fd)
                if rtp is not None:
                    rtp.read_one()

    def _dtmf_callback(self, leg: SipLeg) -> Callable[[str], None]:
        def on_digit(digit: str) -> None:
            leg.deliver_event({"type": "dtmf", "digits": digit})
        return on_digit

    async def _media_loop(self) -> None:
        """One media tick per clock tick. When the loop stalls, the clock fires its overdue ticks back to
        back and this loop wakes for only the last of them: it then runs the ticks it missed too, so the
        outbound audio keeps its timeline instead of slipping 20 ms per missed tick. The clock re-anchors
        after long stalls, which bounds a catch-up to a few ticks."""
        clock = self.clock
        last: int | None = None
        while True:
            tick = await clock.tick()
            missed = tick.index - last - 1 if last is not None and tick.index > last else 0
            last = tick.index
            for _ in range(missed + 1):
                try:
                    self._media_tick(tick.scheduled)
                except Exception:
                    self.handler_errors += 1
                    log.exception("SIP media tick failed")

    def _media_tick(self, scheduled: float) -> None:
        """Send every call's frame of this tick first (that is what is late or not), then hand each
        call's inbound frame from its jitter buffer to the conversation."""
        legs = self._media_legs
        loop_time = asyncio.get_running_loop().time
        senders = [leg for leg in legs if leg.rtp.sending]  # _start_media set their remote address
        if senders:
            frames = np.zeros((len(senders), FRAME_SAMPLES), dtype=np.int16)
            alaw_rows = []
            for i, leg in enumerate(senders):
                rtp = leg.rtp
                if not rtp._dtmf_plan:
                    frame = leg.outbound.pop_frame()
                    if frame is not None:
                        frames[i] = frame
                elif leg.outbound.tap is not None:
                    leg.outbound.tap(None)  # a DTMF tick: the recorder still sees the tick, as silence
                if rtp.negotiated.codec == g711.PCMA:
                    alaw_rows.append(i)
            encoded = g711.ULAW_ENCODE.take(frames.view(np.uint16))
            if alaw_rows:
                encoded[alaw_rows] = g711.ALAW_ENCODE.take(frames[alaw_rows].view(np.uint16))
            payloads = encoded.tobytes()
            for i, leg in enumerate(senders):
                leg.rtp.send_payload(payloads[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        self.send_lags.append(max(0.0, loop_time() - scheduled))
        # Inbound: read the sockets with datagrams waiting, pop each call's due payload, decode them all in one
        # table lookup per G.711 law.
        due: list[tuple[SipLeg, Any]] = []
        ulaw: list[bytes] = []
        alaw: list[bytes] = []
        self._read_rtp()
        for leg in legs:
            rtp = leg.rtp
            if rtp.receiving:
                item = rtp.jitter.pop_item()
                if item is not None:
                    due.append((leg, item))
                    if item is not MISSING:
                        (alaw if rtp.negotiated.codec == g711.PCMA else ulaw).append(item)
        if not due:
            return
        decoded = {
            g711.PCMU: iter(g711.ULAW_DECODE.take(np.frombuffer(b"".join(ulaw), np.uint8)).reshape(-1, FRAME_SAMPLES)),
            g711.PCMA: iter(g711.ALAW_DECODE.take(np.frombuffer(b"".join(alaw), np.uint8)).reshape(-1, FRAME_SAMPLES)),
        }
        now = loop_time()
        for leg, item in due:
            jitter = leg.rtp.jitter
            if item is MISSING:
                samples = jitter.conceal()
            else:
                samples = next(decoded[leg.rtp.negotiated.codec])
                jitter.played(samples)
            leg.deliver_audio(AudioFrame(samples, 8000, now))

    # ------------------------------------------------------------------ outbound calls
    async def dial(self, to_number: str, trunk: Trunk | str, from_number: str | None = None,
                   display_name: str | None = None, ring_timeout: float = 60.0, context: Any = None) -> SipLeg:
        """Start an outbound call; returns once the INVITE is sent. See `leg.answered` and `leg.ended`."""
        if isinstance(trunk, str):
            trunk = Trunk.parse(trunk)
        caller = from_number or trunk.default_caller_id or trunk.username or "talkwire"
        rtp = await RtpSession.open(self.rtp_host, self.rtp_ports)
        call_id = new_call_id(self.public_host)
        target = trunk.uri_for(to_number)
        dialog = Dialog(
            call_id=call_id,
            local=NameAddr(display_name or "", f"sip:{caller}@{trunk.host}", {"tag": new_tag()}),
            remote=NameAddr("", target, {}),
            remote_target=target,
            local_cseq=random.randrange(1, 10_000),
        )
        leg = SipLeg(self, direction="outbound", dialog=dialog, rtp=rtp, remote_number=to_number,
                     local_number=caller, display_name=display_name, trunk=trunk, context=context)
        rtp.on_dtmf = self._dtmf_callback(leg)
        self.legs[call_id] = leg
        try:
            dest = await self._resolve(trunk.host, trunk.port)
        except OSError as exc:
            log.info("call %s: cannot resolve trunk %s: %s", call_id, trunk.host, exc)
            self._end(leg, NETWORK_ERROR)
            return leg
        leg._dest = dest
        offer = self._sdp(leg, None)
        invite = self._invite(leg, offer, [])
        txn = ClientTransaction(self, invite, dest, on_provisional=lambda r: self._on_invite_provisional(leg, r))
        leg._invite_txn = txn
        txn.start()
        self._spawn(self._run_outbound(leg, offer, ring_timeout), f"sip-outbound-{call_id}")
        return leg

    def _invite(self, leg: SipLeg, offer: bytes, auth: list[tuple[str, str]]) -> Request:
        d = leg.dialog
        headers = Headers()
        headers.add("Via", self._via())
        headers.add("Max-Forwards", "70")
        headers.add("From", str(d.local))
        headers.add("To", str(d.remote))
        headers.add("Call-ID", d.call_id)
        headers.add("CSeq", f"{d.next_cseq()} INVITE")
        headers.add("Contact", self._contact(leg.local_number))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", USER_AGENT)
        for name, value in auth:
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        return Request(headers, offer, "INVITE", d.remote_target)

    def _on_invite_provisional(self, leg: SipLeg, resp: Response) -> None:
        if resp.status == 100:
            return
        leg._ringing = True
        tag = resp.to.tag
        if tag and leg.dialog.remote.tag is None:
            leg.dialog.remote.params["tag"] = tag  # early dialog
        if resp.body and resp.content_type == "application/sdp" and leg.answered_at is None:
            try:
                self._start_media(leg, negotiate(parse_sdp(resp.body)))
                leg.rtp.sending = False  # early media is one-way: we listen until the answer
            except SdpError as exc:
                log.info("call %s: ignoring unusable early-media SDP: %s", leg.call_id, exc)
        if leg._cancel_reason is not None and not leg._cancel_sent:
            self._send_cancel(leg)

    def _send_cancel(self, leg: SipLeg) -> None:
        """RFC 3261 §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE."""
        leg._cancel_sent = True
        invite = leg._invite_txn.request
        headers = invite_companion_headers(invite, "CANCEL")
        headers.add("User-Agent", USER_AGENT)
        cancel = Request(headers, b"", "CANCEL", invite.uri)
        txn = ClientTransaction(self, cancel, leg._dest)
        txn.start()
        self._spawn(self._await_quietly(txn.final), f"sip-cancel-{leg.call_id}")

    @staticmethod
    async def _await_quietly(fut: asyncio.Future) -> None:
        try:
            await fut
        except TransactionTimeout:
            pass

    def _request_cancel(self, leg: SipLeg, reason: str) -> None:
        if leg._cancel_reason is None:
            leg._cancel_reason = reason
        if leg._ringing and not leg._cancel_sent:
            self._send_cancel(leg)

    async def _run_outbound(self, leg: SipLeg, offer: bytes, ring_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        ring = loop.call_later(ring_timeout, self._request_cancel, leg, NO_ANSWER)
        auth: list[tuple[str, str]] = []
        answered_challenges: set[int] = set()
        try:
            while True:
                txn: ClientTransaction = leg._invite_txn
                try:
                    resp = await txn.final
                except TransactionTimeout:
                    reason = leg._cancel_reason or NETWORK_ERROR
                    self._end(leg, reason, 408 if reason == NETWORK_ERROR else None)
                    return
                if resp.status < 300:
                    await self._on_answer(leg, resp, txn)
                    return
                if resp.status in (401, 407) and leg._cancel_reason is None:
                    header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
                    challenge = resp.headers.get(header)
                    trunk = leg.trunk
                    if (challenge is None or trunk is None or trunk.username is None
                            or resp.status in answered_challenges):
                        self._end(leg, AUTH_FAILED, resp.status)
                        return
                    answered_challenges.add(resp.status)
                    try:
                        value = authorization(challenge, username=trunk.username, password=trunk.password or "",
                                              method="INVITE", uri=leg.dialog.remote_target)
                    except DigestError as exc:
                        log.info("call %s: cannot answer challenge: %s", leg.call_id, exc)
                        self._end(leg, AUTH_FAILED, resp.status)
                        return
                    name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
                    auth = [(n, v) for n, v in auth if n != name] + [(name, value)]
                    invite = self._invite(leg, offer, auth)
                    new_txn = ClientTransaction(self, invite, leg._dest,
                                                on_provisional=lambda r: self._on_invite_provisional(leg, r))
                    leg._invite_txn = new_txn
                    new_txn.start()
                    continue
                outcome = leg._cancel_reason if resp.status == 487 and leg._cancel_reason else outcome_for_status(resp.status)
                self._end(leg, outcome, resp.status)
                return
        finally:
            ring.cancel()

    async def _on_answer(self, leg: SipLeg, resp: Response, txn: ClientTransaction) -> None:
        d = leg.dialog
        tag = resp.to.tag
        d.remote.params["tag"] = tag
        contact = resp.headers.get("Contact")
        if contact:
            d.remote_target = parse_name_addr(contact).uri
        d.route_set = list(reversed(resp.headers.get_all("Record-Route")))
        d.confirmed = True
        hop = d.next_hop()
        dest = await self._resolve(hop.host, hop.port or 5060)
        leg._dest = dest
        headers = self._dialog_headers(d, f"{txn.request.cseq[0]} ACK")
        headers.add("User-Agent", USER_AGENT)
        ack = Request(headers, b"", "ACK", d.remote_target).to_bytes()
        leg._ack = (ack, dest)
        self.send_raw(ack, dest)
        leg.sip_status = resp.status
        if leg._cancel_reason is not None:
            # Answered while our CANCEL was in flight: the call exists, so end it with a BYE.
            leg.answered_at = time.time()
            await self._bye(leg, leg._cancel_reason)
            return
        try:
            negotiated = negotiate(parse_sdp(resp.body))
        except SdpError as exc:
            log.info("call %s: answer has no usable codec: %s", leg.call_id, exc)
            leg.answered_at = time.time()
            await self._bye(leg, NO_USABLE_CODEC)
            return
        self._start_media(leg, negotiated)
        leg.answered_at = time.time()
        leg.answered.set_result(CallResult(True, ANSWERED, resp.status))

    # ------------------------------------------------------------------ in-dialog requests
    def _dialog_headers(self, d: Dialog, cseq: str) -> Headers:
        """The headers every in-dialog request starts with (RFC 3261 §12.2.1.1): a fresh Via, the route
        set, the dialog's From/To/Call-ID and `cseq` ("<number> <METHOD>")."""
        headers = Headers()
        headers.add("Via", self._via())
        for route in d.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(d.local))
        headers.add("To", str(d.remote))
        headers.add("Call-ID", d.call_id)
        headers.add("CSeq", cseq)
        return headers

    async def _dialog_request(self, leg: SipLeg, method: str, *, body: bytes = b"", content_type: str | None = None,
                              extra: list[tuple[str, str]] | None = None) -> Response:
        """Send an in-dialog request and return its final response; a 401/407 is answered once with
        the trunk's credentials (trunks may challenge BYE and REFER too)."""
        d = leg.dialog
        if d.peer is not None and not d.route_set:
            dest = d.peer  # inbound call: where the INVITE came from (NAT-friendly, like rport)
        else:
            hop = d.next_hop()
            dest = await self._resolve(hop.host, hop.port or 5060)
        auth: list[tuple[str, str]] = []
        for _attempt in range(2):
            headers = self._dialog_headers(d, f"{d.next_cseq()} {method}")
            headers.add("Contact", self._contact(leg.local_number or "talkwire"))
            headers.add("User-Agent", USER_AGENT)
            for name, value in (extra or []) + auth:
                headers.add(name, value)
            if content_type:
                headers.add("Content-Type", content_type)
            txn = ClientTransaction(self, Request(headers, body, method, d.remote_target), dest)
            txn.start()
            resp = await txn.final
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

    async def _bye(self, leg: SipLeg, reason: str) -> None:
        """End an established call: finish the leg at once, send BYE in the background."""
        self._end(leg, reason, leg.sip_status)
        self._spawn(self._send_bye(leg), f"sip-bye-{leg.call_id}")

    async def _send_bye(self, leg: SipLeg) -> None:
        try:
            await self._dialog_request(leg, "BYE")
        except (TransactionTimeout, OSError) as exc:
            log.info("call %s: BYE got no answer: %s", leg.call_id, exc)

    async def hangup_leg(self, leg: SipLeg, reason: str) -> None:
        if leg.ended.done():
            return
        if leg.direction == "outbound" and leg.answered_at is None:
            self._request_cancel(leg, reason)
            if not leg._ringing:
                # Nothing heard back yet, so no CANCEL may go out (RFC 3261 §9.1); once a response
                # arrives it is cancelled or BYE'd by the INVITE task. The leg ends now either way.
                self._end(leg, reason)
                return
            try:
                await asyncio.wait_for(asyncio.shield(leg.ended), timeout=self.timers.b)
            except asyncio.TimeoutError:
                self._end(leg, reason)
            return
        acked = leg._acked
        if acked is not None and not acked.is_set():
            try:  # the callee may not send BYE before our 200 was ACKed (RFC 3261 §15)
                await asyncio.wait_for(acked.wait(), timeout=self.timers.b)
            except asyncio.TimeoutError:
                pass
        await self._bye(leg, reason)

    async def transfer_leg(self, leg: SipLeg, target: str, timeout: float = 30.0) -> None:
        if leg.answered_at is None or leg.ended.done():
            raise TransferFailed("the call is not up")
        if target.startswith(("sip:", "sips:", "tel:")):
            uri = target
        elif leg.trunk is not None:
            uri = leg.trunk.uri_for(target)
        else:
            uri = f"sip:{target}@{parse_uri(leg.dialog.remote_target).hostport}"
        queue: asyncio.Queue = asyncio.Queue()
        leg._notify_queue = queue
        try:
            try:
                resp = await self._dialog_request(
                    leg, "REFER", extra=[("Refer-To", f"<{uri}>"), ("Referred-By", f"<{leg.dialog.local.uri}>")])
            except TransactionTimeout as exc:
                raise TransferFailed("no answer to REFER", 408) from exc
            if resp.status >= 300:
                raise TransferFailed(f"REFER refused: {resp.status} {resp.reason}", resp.status)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                ended = asyncio.ensure_future(asyncio.shield(leg.ended))
                got = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({ended, got}, timeout=max(0.0, remaining),
                                             return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
                if got not in done:
                    got.cancel()
                    if leg.ended.done():
                        raise TransferFailed(f"call ended during the transfer ({leg.ended.result()})")
                    raise TransferFailed("transfer target did not answer in time")
                status, terminated = got.result()
                if status is not None and 200 <= status < 300:
                    await self._bye(leg, TRANSFERRED)
                    return
                if status is not None and status >= 300:
                    raise TransferFailed(f"transfer failed: {status}", status)
                if terminated:
                    raise TransferFailed("transfer subscription ended without a final status")
        finally:
            leg._notify_queue = None

    async def send_dtmf(self, leg: SipLeg, digits: str) -> None:
        cleaned = dtmf_mod.validate_digits(digits)
        if leg.answered_at is None or leg.ended.done():
            raise ConnectionError("the call is not up")
        neg = leg.rtp.negotiated
        if neg is not None and neg.dtmf_payload_type is not None and leg.rtp.sending:
            await leg.rtp.queue_dtmf(dtmf_mod.digit_plan(cleaned))
            return
        for digit in cleaned:  # the peer offered no telephone-event: SIP INFO (application/dtmf-relay)
            await self._dialog_request(leg, "INFO", body=f"Signal={digit}\r\nDuration=100\r\n".encode(),
                                       content_type="application/dtmf-relay")

    # ------------------------------------------------------------------ ending
    def _end(self, leg: SipLeg, reason: str, status: int | None = None) -> None:
        if leg.ended.done():
            return
        leg.outcome = reason
        if status is not None:
            leg.sip_status = status
        leg.ended_at = time.time()
        if not leg.answered.done():
            leg.answered.set_result(CallResult(False, reason, leg.sip_status))
        leg.rtp.receiving = False
        leg.rtp.sending = False
        self._stop_media(leg)
        leg.finish(reason)
        # Keep the socket and the dialog a little longer: late RTP is absorbed, retransmitted
        # BYEs and responses are still matched.
        self._later(self.linger, lambda: self._forget(leg))

    def _forget(self, leg: SipLeg) -> None:
        leg.rtp.close()
        if self.legs.get(leg.call_id) is leg:
            del self.legs[leg.call_id]
