"""A caller and an attacker made of raw UDP sockets, for the tests that attack the SIP server as the open internet
would: every byte is ours to choose (a host name in the SDP, an out-of-range port, a Content-Length of "²"), and
every byte that comes back is counted, with its arrival time.

`RawCall.place()` is a well-behaved caller: INVITE, the 200 OK's SDP, ACK, then RTP at 50 packets/s from the
address its SDP names (silence, or the frames it is given), counting the server's RTP that reaches it.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from signalling.sip.message import Request, Response, SipParseError, parse
from signalling.sip.rtp_packet import build_rtp
from signalling.sip.sdp import parse_sdp

Address = tuple[str, int]
SILENCE = b"\xff" * 160  # one 20 ms frame of mu-law silence


class Socket(asyncio.DatagramProtocol):
    """A UDP socket that keeps every datagram it receives, with its arrival time and source."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[float, bytes, Address]] = []
        self._arrived = asyncio.Event()

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> Socket:
        sock = cls()
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: sock, local_addr=(host, port))
        return sock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append((time.monotonic(), data, (str(addr[0]), int(addr[1]))))
        self._arrived.set()

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, dest: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dest)

    def count(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, _data, _addr in self.received if since <= t < until)

    def octets(self, since: float = 0.0) -> int:
        return sum(len(data) for t, data, _addr in self.received if t >= since)

    def messages(self) -> list[Request | Response]:
        parsed: list[Request | Response] = []
        for _t, data, _addr in self.received:
            try:
                parsed.append(parse(data))
            except SipParseError:
                pass
        return parsed

    def responses(self, status: int, method: str | None = None) -> list[tuple[float, Response]]:
        """The responses with `status` (to `method` requests, when given), with their arrival times."""
        found = []
        for t, data, _addr in self.received:
            try:
                msg = parse(data)
            except SipParseError:
                continue
            if isinstance(msg, Response) and msg.status == status and method in (None, msg.cseq[1]):
                found.append((t, msg))
        return found

    def answered(self, status: int) -> set[str]:
        """The Call-IDs answered with `status` (a final response to an INVITE may come more than once)."""
        return {msg.call_id for _t, msg in self.responses(status)}

    async def response(self, status: int, method: str | None = None, timeout: float = 10.0) -> Response:
        """The first response with `status` (to `method`; waiting for it if need be)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.responses(status, method)
            if found:
                return found[0][1]
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {status} among {[m for m in self.messages()]}")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(6)


def sdp(address: str, port: int | str, *, c_line: str | None = None) -> bytes:
    """An offer of PCMU and telephone-event from `address:port` (`c_line` replaces the connection line)."""
    lines = ["v=0", f"o=attacker 1 1 IN IP4 {address}", "s=-", c_line or f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Dialog:
    """What a request needs to belong to one call."""

    number: str
    server: Address
    local: Address
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@attacks.test")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_tag: str | None = None
    cseq: int = 1

    def request(self, method: str, body: bytes = b"", *, cseq: int | None = None, branch: str | None = None,
                content_length: str | None = None, extra: tuple[str, ...] = ()) -> bytes:
        host, port = self.server
        lines = [
            f"{method} sip:{self.number}@{host}:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={branch or new_branch()};rport",
            "Max-Forwards: 70",
            f"From: \"Raw\" <sip:caller@{self.local[0]}:{self.local[1]}>;tag={self.from_tag}",
            f"To: <sip:{self.number}@{host}:{port}>" + (f";tag={self.to_tag}" if self.to_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq if cseq is None else cseq} {method}",
            f"Contact: <sip:caller@{self.local[0]}:{self.local[1]}>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def rtp_stream(frames: Iterator[bytes], ssrc: int, seq: int = 1000, timestamp: int = 0) -> Iterator[bytes]:
    for n, payload in enumerate(frames):
        yield build_rtp(n == 0, 0, (seq + n) & 0xFFFF, (timestamp + 160 * n) & 0xFFFFFFFF, ssrc, payload)


def forever(frame: bytes = SILENCE) -> Iterator[bytes]:
    while True:
        yield frame


async def pace(packets: Iterator[bytes], sock: Socket, dest: Address, stop: asyncio.Event,
               interval: float = 0.02) -> int:
    """Send `packets` every `interval` seconds (on an absolute grid) until `stop` or they run out; returns how
    many were sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for packet in packets:
        if stop.is_set():
            break
        sock.send(packet, dest)
        sent += 1
        delay = start + sent * interval - loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
    return sent


@dataclass
class RawCall:
    """A well-behaved caller (INVITE, ACK, RTP from its SDP's address) and what reached it."""

    dialog: Dialog
    sip: Socket
    rtp: Socket
    server_rtp: Address
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _sender: asyncio.Task[int] | None = None

    @classmethod
    async def place(cls, server: Address, number: str, *, ack: bool = True) -> RawCall:
        sip = await Socket.open()
        rtp = await Socket.open()
        dialog = Dialog(number, server, sip.address)
        sip.send(dialog.request("INVITE", sdp(*rtp.address)), server)
        ok = await sip.response(200, "INVITE", timeout=20)
        dialog.to_tag = ok.to.tag
        media = parse_sdp(ok.body).audio()
        call = cls(dialog, sip, rtp, (server[0], media.port))
        if ack:
            sip.send(dialog.request("ACK", cseq=1), server)
        return call

    def speak(self, frames: Iterator[bytes] | None = None, ssrc: int = 0x1234) -> None:
        """Send RTP from the SDP's address at 50 packets/s (silence unless `frames` are given)."""
        self.stop_speaking()
        self._stop = asyncio.Event()
        packets = rtp_stream(frames if frames is not None else forever(), ssrc)
        self._sender = asyncio.ensure_future(pace(packets, self.rtp, self.server_rtp, self._stop))

    def stop_speaking(self) -> None:
        self._stop.set()

    def rate(self, since: float, until: float) -> float:
        """RTP packets per second that reached this caller between two monotonic times."""
        return self.rtp.count(since, until) / max(until - since, 1e-6)

    async def hang_up(self) -> None:
        self.stop_speaking()
        if self._sender is not None:
            await self._sender
        self.dialog.cseq += 1
        self.sip.send(self.dialog.request("BYE"), self.dialog.server)
        try:
            await self.sip.response(200, "BYE", timeout=5)
        finally:
            self.sip.close()
            self.rtp.close()
