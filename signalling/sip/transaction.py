"""SIP transactions over UDP (RFC 3261 §17) with the retransmission timers.

Client: INVITE retransmits on Timer A (T1, doubling) until a provisional response, gives up on
Timer B (64·T1) unless a provisional response came first (RFC 3261 §17.1.1.2: Timer B stops in Proceeding, so
a phone may ring as long as the caller's ring timeout allows); once we CANCEL it, the INVITE is given up 64·T1
later if no final response came (§9.1). Non-INVITE retransmits on Timer E (doubling up to T2) and gives up on
Timer F. A non-2xx final response to an INVITE is ACKed here, and the transaction lingers (Timer D) to ACK its
retransmissions.

Server: the last response is re-sent whenever the request is retransmitted (at most once per T1/2: a storm of
copies gets no more than a client's Timer A could ask for); a non-2xx final response to an INVITE is
retransmitted on Timer G until the ACK, but at most `UNANSWERED_RETRANSMITS` times (a source that never ACKs,
perhaps a spoofed one, gets a few copies, not a dozen), and the transaction lives to Timer H; the transaction
lingers after a final response (Timer J, and RFC 6026's "Accepted" for a 2xx) so retransmitted requests are
absorbed rather than seen as new ones.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from signalling.sip.message import Headers, Request, Response

Address = tuple[str, int]
ClientKey = tuple[str, str]  # (top Via branch, method)
ServerKey = tuple[str, str, str]  # (top Via branch, sent-by, method)

# Retransmissions of a final response to a source that does not acknowledge it (Timer G, and the UAS's 2xx):
# at T1, 2·T1, 4·T1 after it, which covers a lossy path; a client that lost them all retransmits its request,
# and is answered again.
UNANSWERED_RETRANSMITS = 3


@dataclass(frozen=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def b(self) -> float:
        return 64 * self.t1


class TransactionTimeout(Exception):
    """No final response before Timer B/F fired."""


class Wire(Protocol):
    """What the transaction layer needs from the transport below it: send one datagram."""

    def send_raw(self, data: bytes, dest: Address) -> None: ...


class TransactionLayer:
    """The live transactions of one endpoint, matched by key (RFC 3261 §17.1.3, §17.2.3). It knows the wire
    and the timer values, nothing of calls or dialogs: the layers above start transactions and await them."""

    def __init__(self, wire: Wire, timers: Timers) -> None:
        self.wire = wire
        self.timers = timers
        self.client: dict[ClientKey, ClientTransaction] = {}
        self.server: dict[ServerKey, ServerTransaction] = {}
        self.absorbed = 0  # retransmitted requests not answered again (they came faster than T1/2)

    def send(self, data: bytes, dest: Address) -> None:
        self.wire.send_raw(data, dest)

    def start_client(self, request: Request, dest: Address,
                     on_provisional: Callable[[Response], None] | None = None) -> ClientTransaction:
        txn = ClientTransaction(self, request, dest, on_provisional)
        txn.start()
        return txn

    def start_server(self, request: Request, source: Address) -> ServerTransaction:
        txn = ServerTransaction(self, request, source)
        txn.start()
        return txn

    def match_response(self, response: Response) -> bool:
        """Hand `response` to its client transaction; False when none matches (e.g. a retransmitted 2xx)."""
        txn = self.client.get((response.top_via.branch or "", response.cseq[1]))
        if txn is None:
            return False
        txn.receive(response)
        return True

    def close(self) -> None:
        for txn in list(self.client.values()):
            txn.terminate()
        for stxn in list(self.server.values()):
            stxn.terminate()


def invite_companion_headers(invite: Request, method: str, *, to: str | None = None) -> Headers:
    """Headers for a request of `invite`'s own transaction (its CANCEL, or the ACK of a non-2xx answer):
    the INVITE's top Via, Route set, From, Call-ID and CSeq number, with `method`; To is the INVITE's
    unless given (that ACK takes the response's To, with the tag)."""
    headers = Headers()
    headers.add("Via", invite.headers.get("Via") or "")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", (invite.headers.get("To") or "") if to is None else to)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq[0]} {method}")
    return headers


class ClientTransaction:
    def __init__(self, layer: TransactionLayer, request: Request, dest: Address,
                 on_provisional: Callable[[Response], None] | None = None) -> None:
        self.layer = layer
        self.request = request
        self.dest = dest
        self.method = request.method
        self.branch = request.top_via.branch or ""
        self.key: ClientKey = (self.branch, self.method)
        self.on_provisional = on_provisional
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._data = request.to_bytes()
        self._interval = layer.timers.t1
        self._retransmit: asyncio.TimerHandle | None = None
        self._timeout: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._ack: bytes | None = None
        self.provisional_seen = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.layer.client[self.key] = self
        self.layer.send(self._data, self.dest)
        self._retransmit = loop.call_later(self._interval, self._on_retransmit)
        self._timeout = loop.call_later(self.layer.timers.b, self._on_timeout)

    def _on_retransmit(self) -> None:
        if self.final.done():
            return
        self.layer.send(self._data, self.dest)
        if self.method == "INVITE":
            self._interval *= 2
        else:
            self._interval = min(self._interval * 2, self.layer.timers.t2)
        self._retransmit = asyncio.get_running_loop().call_later(self._interval, self._on_retransmit)

    def _on_timeout(self) -> None:
        if not self.final.done():
            self.final.set_exception(TransactionTimeout(f"{self.method} to {self.dest}: no final response"))
        self.terminate()

    def receive(self, response: Response) -> None:
        if response.status < 200:
            if self.final.done():
                return
            if not self.provisional_seen:
                self.provisional_seen = True
                if self.method == "INVITE":
                    # Proceeding: no more retransmissions, and Timer B stops (RFC 3261 §17.1.1.2).
                    for handle in (self._retransmit, self._timeout):
                        if handle is not None:
                            handle.cancel()
                    self._timeout = None
                elif self._retransmit is not None:
                    # Timer E continues at T2 in the Proceeding state.
                    self._retransmit.cancel()
                    self._interval = self.layer.timers.t2
                    self._retransmit = asyncio.get_running_loop().call_later(self._interval, self._on_retransmit)
            if self.on_provisional is not None:
                self.on_provisional(response)
            return
        if self.method == "INVITE" and response.status >= 300:
            if self._ack is None:
                self._ack = self._build_ack(response).to_bytes()
            self.layer.send(self._ack, self.dest)  # also for each retransmitted final response
        if self.final.done():
            return
        self.final.set_result(response)
        for handle in (self._retransmit, self._timeout):
            if handle is not None:
                handle.cancel()
        if self.method == "INVITE" and response.status < 300:
            self.terminate()  # the ACK for a 2xx belongs to the dialog, not to the transaction
        else:
            linger = 32.0 if self.method == "INVITE" else self.layer.timers.t4
            self._linger = asyncio.get_running_loop().call_later(min(linger, self.layer.timers.b), self.terminate)

    def cancelled(self) -> None:
        """Our CANCEL of this INVITE went out: without a final response 64·T1 from now, give the INVITE up
        (RFC 3261 §9.1)."""
        if self.final.done():
            return
        if self._timeout is not None:
            self._timeout.cancel()
        self._timeout = asyncio.get_running_loop().call_later(self.layer.timers.b, self._on_timeout)

    def _build_ack(self, response: Response) -> Request:
        """RFC 3261 §17.1.1.3: same Request-URI, top Via, From, Call-ID, CSeq number; To from the response."""
        req = self.request
        return Request(invite_companion_headers(req, "ACK", to=response.headers.get("To") or ""), b"", "ACK", req.uri)

    def terminate(self) -> None:
        for handle in (self._retransmit, self._timeout, self._linger):
            if handle is not None:
                handle.cancel()
        if self.layer.client.get(self.key) is self:
            del self.layer.client[self.key]
        if not self.final.done():
            self.final.set_exception(TransactionTimeout("transaction terminated"))
            self.final.exception()  # mark retrieved: nobody may be waiting any more


class ServerTransaction:
    def __init__(self, layer: TransactionLayer, request: Request, source: Address) -> None:
        self.layer = layer
        self.request = request
        self.source = source
        self.method = request.method
        self.key = server_key(request)
        self.last_response: bytes | None = None
        self.final_status: int | None = None
        self.acked = asyncio.Event()
        self.cancelled = False
        self._interval = layer.timers.t1
        self._timers: list[asyncio.TimerHandle] = []
        self._retransmits_left = UNANSWERED_RETRANSMITS
        self._last_resent = 0.0  # loop time of the last copy sent for a retransmitted request

    def start(self) -> None:
        self.layer.server[self.key] = self
        # Without any final response the transaction still must not live forever.
        self._timers.append(asyncio.get_running_loop().call_later(4 * self.layer.timers.b, self.terminate))

    def respond(self, response: Response) -> None:
        if self.final_status is not None:
            return  # one final response per transaction
        self.last_response = response.to_bytes()
        self.layer.send(self.last_response, self.source)
        if response.status < 200:
            return
        self.final_status = response.status
        loop = asyncio.get_running_loop()
        if self.method == "INVITE" and response.status >= 300:
            self._timers.append(loop.call_later(self._interval, self._retransmit_final))
        self._timers.append(loop.call_later(self.layer.timers.b, self.terminate))

    def _retransmit_final(self) -> None:
        if self.acked.is_set() or self.last_response is None or self._retransmits_left <= 0:
            return  # acknowledged, or the source never answers: the transaction waits out Timer H in silence
        self._retransmits_left -= 1
        self.layer.send(self.last_response, self.source)
        self._interval = min(self._interval * 2, self.layer.timers.t2)
        self._timers.append(asyncio.get_running_loop().call_later(self._interval, self._retransmit_final))

    def retransmitted(self) -> None:
        """The same request arrived again: repeat our last response (if any), at most once per T1/2."""
        if self.last_response is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_resent < self.layer.timers.t1 / 2:
            self.layer.absorbed += 1
            return
        self._last_resent = now
        self.layer.send(self.last_response, self.source)

    def ack_received(self) -> None:
        self.acked.set()

    def terminate(self) -> None:
        for handle in self._timers:
            handle.cancel()
        if self.layer.server.get(self.key) is self:
            del self.layer.server[self.key]


def server_key(request: Request) -> ServerKey:
    """Transaction key: top Via branch + sent-by + method (ACK and CANCEL map onto the INVITE's)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or f"{request.call_id}:{request.cseq[0]}"
    return (branch, f"{via.host}:{via.port}", method)
