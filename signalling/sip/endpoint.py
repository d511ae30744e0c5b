"""The SIP transport/endpoint (RFC 3261 §18): one UDP socket for every call of a worker.

Every datagram goes through `datagram_received`, which never raises: a keep-alive is ignored, a malformed
message is counted and dropped (a request whose Via, From, To, Call-ID and CSeq were readable is answered 400
first, statelessly), and a parsed one is dispatched to the request or the response handler given at bind time
(the user agent's). What hostile traffic can repeat is logged through a rate limit (`media.log_limit`), never
a line or a traceback per datagram. Also the address resolution of the hosts we send to, cached per host:port.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import Callable

from media.log_limit import LimitedLog
from signalling.sip.builder import build_response
from signalling.sip.dialog import new_tag
from signalling.sip.dns import SipLocator
from signalling.sip.message import Request, Response, SipParseError, parse
from signalling.sip.stream_transport import StreamTransport
from signalling.sip.transaction import Address

log = logging.getLogger(__name__)

OnRequest = Callable[[Request, Address], None]
OnResponse = Callable[[Response], None]


def local_ip_for_default_route() -> str:
    """The address other hosts reach us on when bound to 0.0.0.0 (connect() on UDP sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self, on_request: OnRequest, on_response: OnResponse) -> None:
        self.on_request = on_request
        self.on_response = on_response
        self.transport: asyncio.DatagramTransport | None = None
        self.locator = SipLocator()  # DNS (RFC 3263), replaceable (e.g. by one asking other name servers)
        self.streams: StreamTransport | None = None  # SIP over TCP/TLS, when the user agent has it
        self.malformed_datagrams = 0
        self.handler_errors = 0
        self.bad_requests_answered = 0  # malformed requests answered 400 (also counted as malformed)
        self._limited = LimitedLog(log)

    async def listen(self, host: str, port: int) -> None:
        """Bind the UDP socket (port 0: any free port; see `local_address`)."""
        self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: self,
                                                                                      local_addr=(host, port))

    @property
    def local_address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send_raw(self, data: bytes, dest: Address) -> None:
        if self.streams is not None and self.streams.handles(dest):
            self.streams.send(data, dest)  # a TCP/TLS peer (stream_transport.py)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, dest)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def resolve(self, host: str, port: int, transport: str = "udp") -> Address:
        """Where to send for `host`: an IP literal as it is, a name by DNS off the loop (cached for its TTL);
        port 0 locates the host's SIP service by NAPTR/SRV (RFC 3263). `transport` "tcp"/"tls": later sends to
        that address go over a stream to it. Raises OSError when it does not resolve."""
        if port == 0:
            dest = (await self.locator.locate(host, None, transport))[0].address
        else:
            dest = await self.locator.address(host, port)
        if transport != "udp" and self.streams is not None:
            self.streams.route(dest, transport, host)
        return dest

    # ---- receiving
    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            self._dispatch(data, (str(addr[0]), int(addr[1])))
        except Exception as exc:
            self.handler_errors += 1
            self._limited.log(logging.ERROR, ("handler", type(exc).__name__),
                              "error handling a SIP datagram from %s:\n%s", addr[0], traceback.format_exc())

    def _dispatch(self, data: bytes, addr: Address) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = parse(data)
        except SipParseError as exc:
            self.malformed_datagrams += 1
            self._limited.log(logging.DEBUG, ("malformed", addr[0]), "malformed SIP datagram from %s: %s", addr[0], exc)
            if exc.request is not None and exc.request.method != "ACK":
                self.bad_requests_answered += 1
                reason = "".join(c if c.isprintable() else " " for c in f"Bad Request ({exc})")[:120]
                self.send_raw(build_response(exc.request, 400, to_tag=new_tag(), source=addr, reason=reason).to_bytes(),
                              addr)
            return
        if isinstance(msg, Response):
            self.on_response(msg)
        else:
            self.on_request(msg, addr)
