"""Fuzz targets of the SIP stack, shared by the bounded test (tests/test_sip_fuzz.py: a few hundred examples, seconds)
and the longer run (scripts/fuzz_sip.py). Each target is a hypothesis strategy and a check of one example; the
checks state what must hold whatever arrives from the network:

- `parser`: bytes → a message or `SipParseError`, nothing else; what parses serialises and parses again the same.
- `sdp`: text → `SdpError`, or a negotiation whose address is an IPv4 literal and whose port is 1-65535.
- `rtp`: a sequence of datagrams from the caller, a stranger and the caller's own IP on other ports, garbage
  among them, SSRCs flapping → never an exception; the stranger is never latched to, never heard, never gets a
  DTMF digit in; a new SSRC replaces the current one only after it persisted.
- `transactions`: requests and responses (floods, retransmission storms, ACKs and CANCELs for anything) fed into a
  user agent → no handler error, a bounded number of transactions, and never more than a few bytes sent back
  for each byte received (no amplification).

The seeds are the corpus (tests/sip_corpus) and well-formed messages, mutated by inserting, deleting and
overwriting the bytes that matter to a parser.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from media import g711
from signalling.sip import dtmf
from signalling.sip.message import SipParseError, parse
from signalling.sip.rtp import SSRC_PERSISTENCE, RtpSession
from signalling.sip.rtp_packet import build_rtp
from signalling.sip.sdp import Negotiated, SdpError, build_sdp, negotiate, parse_sdp

CORPUS = Path(__file__).resolve().parent / "sip_corpus"


def corpus(kind: str) -> list[tuple[str, bytes, str]]:
    """(file, content, expect) of the corpus entries of `kind` ("sip", "sdp", "rtp")."""
    manifest = json.loads((CORPUS / "manifest.json").read_text("utf-8"))
    return [(e["file"], (CORPUS / e["file"]).read_bytes(), e["expect"])
            for e in manifest["entries"] if e["file"].startswith(kind + "/")]


INVITE = (
    b"INVITE sip:+15557770100@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKfuzz;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Fuzz" <sip:fuzz@192.0.2.7>;tag=f1\r\n'
    b"To: <sip:+15557770100@127.0.0.1:5060>\r\n"
    b"Call-ID: fuzz@192.0.2.7\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:fuzz@192.0.2.7:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)
OFFER = build_sdp(address="192.0.2.7", port=40000, session_id=1, version=1)

_PIECES = [b":", b";", b",", b"<", b">", b'"', b"\r\n", b" ", b"\t", b"=", b"@", b"[", b"]", b"\x00", b"SIP/2.0",
           b"tag=", b"branch=", b"Content-Length: 9\r\n", b"\xc3", b"9" * 12, "²".encode(), "٣".encode(),
           "５".encode(), b"-1", b"70000", b"IN IP4 ", b"IN IP6 ", b"host.invalid", b"m=audio ", b"c=", b"a=rtcp:",
           b"a=rtpmap:", b"0.0.0.0", b"/"]


def mutate(base: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    """Insert (0), delete (1) or overwrite (2) at positions taken modulo the length."""
    data = bytearray(base)
    for kind, pos, chunk in ops:
        pos = pos % (len(data) + 1)
        if kind == 0:
            data[pos:pos] = chunk
        elif kind == 1:
            del data[pos:pos + len(chunk) + 1]
        else:
            data[pos:pos + len(chunk)] = chunk
    return bytes(data)


MUTATIONS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4000), st.sampled_from(_PIECES)),
                     min_size=1, max_size=8)


def seeded(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or a seed mutated."""
    return st.one_of(st.binary(max_size=800), st.builds(mutate, st.sampled_from(seeds), MUTATIONS))


# ---- parser ----------------------------------------------------------------------------------------------

def parser_data() -> st.SearchStrategy[bytes]:
    return seeded([INVITE, INVITE.replace(b"Content-Length: 0", f"Content-Length: {len(OFFER)}".encode()) + OFFER]
                  + [data for _f, data, _e in corpus("sip")])


def check_parser(data: bytes) -> None:
    try:
        msg = parse(data)
    except SipParseError:
        return
    again = parse(msg.to_bytes())
    assert type(again) is type(msg) and again.body == msg.body and again.call_id == msg.call_id


# ---- SDP ---------------------------------------------------------------------------------------------------

def sdp_data() -> st.SearchStrategy[bytes]:
    return seeded([OFFER] + [data for _f, data, _e in corpus("sdp")])


def check_sdp(data: bytes) -> None:
    try:
        negotiated = negotiate(parse_sdp(data))
    except SdpError:
        return
    address = ipaddress.IPv4Address(negotiated.address)  # a literal: never a name to resolve
    assert str(address) == negotiated.address and not address.is_multicast
    assert 1 <= negotiated.port <= 65535
    assert 0 <= negotiated.payload_type <= 127


# ---- the RTP receive path ---------------------------------------------------------------------------------

CALLER_SIGNALLING = "198.51.100.1"
SDP_ADDRESS = ("192.0.2.10", 4000)
CALLER_NAT = (CALLER_SIGNALLING, 7000)
STRANGER = ("203.0.113.66", 9999)
SOURCES = [SDP_ADDRESS, CALLER_NAT, (CALLER_SIGNALLING, 7002), STRANGER, ("192.0.2.10", 4002)]
LEGIT_SSRC = 0x1234


@dataclass(frozen=True)
class Datagram:
    source: int  # index into SOURCES
    kind: str  # "audio", "dtmf", "garbage", "own"
    ssrc: int
    seq: int
    garbage: bytes

    def encode(self, own_ssrc: int) -> bytes:
        if self.kind == "garbage":
            return self.garbage
        if self.kind == "dtmf":
            return build_rtp(True, 101, self.seq, 8000, self.ssrc, dtmf.pack_event(9, True, 800))
        ssrc = own_ssrc if self.kind == "own" else self.ssrc
        return build_rtp(False, 0, self.seq, self.seq * 160, ssrc, bytes([self.source]) * 160)


def rtp_data() -> st.SearchStrategy[list[Datagram]]:
    garbage = seeded([data for _f, data, _e in corpus("rtp")] + [build_rtp(False, 0, 1, 0, LEGIT_SSRC, b"\xff" * 160)])
    ssrc = st.one_of(st.just(LEGIT_SSRC), st.integers(0, 2**32 - 1), st.sampled_from([7, 8]))
    datagram = st.builds(Datagram, st.integers(0, len(SOURCES) - 1),
                         st.sampled_from(["audio", "audio", "dtmf", "garbage", "own"]), ssrc,
                         st.integers(0, 0xFFFF), garbage)
    return st.lists(datagram, max_size=60)


def check_rtp(datagrams: list[Datagram]) -> None:
    digits: list[str] = []
    rtp = RtpSession(on_dtmf=digits.append)
    rtp.signalling_ip = CALLER_SIGNALLING
    rtp.apply(Negotiated(*SDP_ADDRESS, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.receiving = True
    rtp.set_sending(True)  # wanted, but not before the ACK (or RTP from exactly the SDP's address)
    for datagram in datagrams:
        source = SOURCES[datagram.source]
        before = (rtp.remote_ssrc, rtp.jitter.received, len(digits))
        rtp._receive(datagram.encode(rtp.ssrc), source)  # the inner path: an exception must surface here
        assert rtp.remote != STRANGER and rtp._source != STRANGER, "a stranger steered our media"
        if source == STRANGER:
            assert (rtp.remote_ssrc, rtp.jitter.received, len(digits)) == before, "a stranger was heard"
        if before[0] is not None and rtp.remote_ssrc != before[0]:
            assert source == rtp._source, "an SSRC change from another source"
        if rtp.sending:
            assert rtp._source == SDP_ADDRESS, "media before the ACK, though the SDP's address never spoke"


def check_flapping(ssrcs: list[int]) -> None:
    """The latched source itself flapping SSRCs: the current one changes only after a run of the new one."""
    rtp = RtpSession()
    rtp.apply(Negotiated(*SDP_ADDRESS, g711.PCMU, g711.PCMU, None, "sendrecv"))
    rtp.receiving = True
    rtp._receive(build_rtp(False, 0, 0, 0, LEGIT_SSRC, b"\xff" * 160), SDP_ADDRESS)
    run_ssrc, run = LEGIT_SSRC, 0
    for n, ssrc in enumerate(ssrcs, 1):
        current = rtp.remote_ssrc
        run, run_ssrc = (run + 1, ssrc) if ssrc == run_ssrc else (1, ssrc)
        rtp._receive(build_rtp(False, 0, n, n * 160, ssrc, b"\xff" * 160), SDP_ADDRESS)
        if rtp.remote_ssrc != current:
            assert rtp.remote_ssrc == ssrc and run >= SSRC_PERSISTENCE


def flapping_data() -> st.SearchStrategy[list[int]]:
    return st.lists(st.one_of(st.sampled_from([LEGIT_SSRC, 7, 8]), st.integers(0, 2**32 - 1)), max_size=80)


# ---- the transaction layer ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    method: str
    branch: int
    call: int
    to_tag: bool
    cseq: int
    response: int | None  # send a response with this status instead of a request

    def encode(self, host: str, port: int) -> bytes:
        if self.response is not None:
            return (f"SIP/2.0 {self.response} X\r\nVia: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{self.branch}\r\n"
                    f"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c{self.call}\r\n"
                    f"CSeq: {self.cseq} {self.method}\r\nContent-Length: 0\r\n\r\n").encode()
        method = self.method
        body = OFFER if method == "INVITE" else b""
        lines = [f"{method} sip:{'100' if self.call % 2 else '404'}@{host}:{port} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{self.branch};rport",
                 "From: <sip:f@127.0.0.1>;tag=peer", f"To: <sip:100@{host}:{port}>" + (";tag=x" if self.to_tag else ""),
                 f"Call-ID: c{self.call}", f"CSeq: {self.cseq} {method}", "Contact: <sip:f@127.0.0.1:9>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def transaction_data() -> st.SearchStrategy[list[tuple[Message, int]]]:
    """Requests (and stray responses), each repeated 1-50 times: floods and retransmission storms."""
    request = st.builds(Message, st.sampled_from(["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REFER"]),
                        st.integers(0, 5), st.integers(0, 5), st.booleans(), st.integers(1, 3),
                        st.one_of(st.none(), st.sampled_from([100, 180, 200, 404, 487])))
    return st.lists(st.tuples(request, st.integers(1, 50)), max_size=12)


class Wire:
    """Counts what a user agent sends back, in place of its socket (`ua.endpoint.send_raw = wire`)."""

    def __init__(self) -> None:
        self.sent = 0
        self.datagrams = 0

    def __call__(self, data: bytes, dest: Any) -> None:
        self.sent += len(data)
        self.datagrams += 1


AMPLIFICATION = 8  # bytes sent back per byte received, at most: a 200 OK with SDP, its 3 copies, Timer H's BYE


def feed_transactions(ua: Any, sequence: list[tuple[Message, int]]) -> int:
    """Feed `sequence` into `ua`'s endpoint (as from 127.0.0.1:9); returns the bytes fed."""
    host, port = ua.local_address
    received = 0
    for request, times in sequence:
        data = request.encode(host, port)
        for _ in range(times):
            ua.endpoint.datagram_received(data, ("127.0.0.1", 9))
            received += len(data)
    return received


TARGETS: dict[str, tuple[Callable[[], st.SearchStrategy[Any]], Callable[[Any], None]]] = {
    "parser": (parser_data, check_parser),
    "sdp": (sdp_data, check_sdp),
    "rtp": (rtp_data, check_rtp),
    "ssrc": (flapping_data, check_flapping),
}
