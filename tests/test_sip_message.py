"""SIP message parsing: the RFC 3261 features the UA relies on, a fuzz test of the parser, and the UA
surviving a corpus of malformed datagrams and still completing a call afterwards."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalling.sip.message import (
    Request, Response, SipParseError, parse, parse_name_addr, parse_uri, parse_via,
)
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent

INVITE = (
    "INVITE sip:+15551234567@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@10.0.0.1>;tag=1928301774\r\n'
    "To: <sip:+15551234567@127.0.0.1:5070>\r\n"
    "Call-ID: a84b4c76e66710@10.0.0.1\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.1:5060>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\r\n"
).encode()


def test_parses_a_request():
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE" and msg.uri == "sip:+15551234567@127.0.0.1:5070"
    assert msg.cseq == (314159, "INVITE")
    assert msg.from_.display == "Alice" and msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert msg.top_via.branch == "z9hG4bKabc" and msg.top_via.port == 5060
    assert msg.body == b"v=0\r"  # Content-Length rules: the rest of the datagram is not body


def test_compact_headers_folding_and_multiple_values():
    data = (
        "SIP/2.0 200 OK\r\n"
        "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK2\r\n"
        "Via: SIP/2.0/UDP 10.0.0.3\r\n ;branch=z9hG4bK3\r\n"
        "f: <sip:a@b>;tag=x\r\n"
        "t: <sip:c@d>;tag=y\r\n"
        "i: call-1\r\n"
        "CSeq: 1\r\n\tINVITE\r\n"
        "m: <sip:c@10.0.0.9:5080>\r\n"
        "Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"
        "l: 0\r\n\r\n"
    ).encode()
    msg = parse(data)
    assert isinstance(msg, Response) and msg.status == 200
    assert [v.branch for v in msg.vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert msg.call_id == "call-1" and msg.cseq == (1, "INVITE")
    assert msg.headers.get_all("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert parse_name_addr(msg.headers.get("Contact")).uri == "sip:c@10.0.0.9:5080"


def test_round_trip():
    msg = parse(INVITE)
    again = parse(msg.to_bytes())
    assert again.headers.items() == msg.headers.items()[:-1] + [("Content-Length", "4")]
    assert again.body == msg.body


def test_uri_name_addr_and_via_forms():
    uri = parse_uri("sip:alice:secret@[::1]:5070;transport=udp?subject=x")
    assert (uri.user, uri.password, uri.host, uri.port, uri.params) == ("alice", "secret", "::1", 5070, {"transport": "udp"})
    assert str(parse_uri("sip:+1555@host;user=phone")) == "sip:+1555@host;user=phone"
    na = parse_name_addr("sip:bob@biloxi.com;tag=abc")  # addr-spec: the tag belongs to the header
    assert na.uri == "sip:bob@biloxi.com" and na.tag == "abc"
    assert parse_name_addr('"A, \\"B\\"" <sip:x@y>').display == 'A, "B"'
    assert parse_via("SIP/2.0/UDP host.example:5061;received=1.2.3.4;rport").params == {"received": "1.2.3.4", "rport": None}


MALFORMED = [
    b"",
    b"\r\n\r\n",
    b"hello world",
    b"\x00\xff\xfe" * 50,
    b"INVITE sip:a@b SIP/2.0\r\n\r\n",  # no mandatory headers
    INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: abc INVITE"),
    INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"),  # method mismatch
    INVITE.replace(b"Content-Length: 4", b"Content-Length: 400"),
    INVITE.replace(b"Content-Length: 4", b"Content-Length: -1"),
    INVITE.replace(b"Content-Length: 4", b"Content-Length: 99999999999999999999"),
    INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
    INVITE.replace(b"INVITE sip:", b"INV ITE sip:", 1),
    INVITE.replace(b"sip:+15551234567@127.0.0.1:5070 SIP", b"sip:@:99999 SIP", 1),
    INVITE.replace(b"Via: SIP/2.0/UDP 10.0.0.1:5060", b"Via: garbage"),
    INVITE.replace(b'From: "Alice" <sip:alice@10.0.0.1>;tag=1928301774', b"From: Alice <sip:alice@10.0.0.1;tag=1"),
    INVITE.replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n folded-without-header\r\nVia", 1),
    INVITE.replace(b"Call-ID:", b"Call ID:"),
    b"SIP/2.0 999 Whatever\r\nVia: SIP/2.0/UDP a\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
    b"SIP/2.0 20 OK\r\n\r\n",
    "INVITE sip:ü@b SIP/2.0\r\n".encode("latin-1") + INVITE[30:],
    INVITE.split(b"\r\n\r\n")[0],  # no end of headers
    INVITE.replace(b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport", b"Via: SIP/2.0/UDP [::1"),
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_corpus_raises_parse_error_only(data):
    with pytest.raises(SipParseError):
        parse(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(data):
    try:
        parse(data)
    except SipParseError:
        pass


def _mutate(base: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
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


_mutations = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2000),
              st.sampled_from([b":", b";", b",", b"<", b">", b'"', b"\r\n", b" ", b"\t", b"=", b"@", b"[", b"]", b"\x00",
                               b"SIP/2.0", b"tag=", b"branch=", b"Content-Length: 9\r\n", b"\xc3", b"9" * 12])),
    min_size=1, max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations)
def test_fuzz_mutated_messages_parse_or_raise_parse_error(ops):
    data = _mutate(INVITE, ops)
    try:
        msg = parse(data)
    except SipParseError:
        return
    # Whatever parses must serialise and parse again to the same thing.
    again = parse(msg.to_bytes())
    assert type(again) is type(msg) and again.body == msg.body and again.call_id == msg.call_id


def _requests_for(ua: SipUserAgent) -> list[bytes]:
    host, port = ua.local_address
    base = INVITE.replace(b"127.0.0.1:5070", f"{host}:{port}".encode())
    bye = base.replace(b"INVITE sip:", b"BYE sip:", 1).replace(b"314159 INVITE", b"2 BYE").replace(
        b"To: <sip:+15551234567@127.0.0.1:5070>", b"To: <sip:x@y>;tag=nope")
    return [
        base,  # a real INVITE, with an unusable SDP body: 488
        base.replace(b"Content-Length: 4\r\n\r\nv=0\r\n", b"Content-Length: 0\r\n\r\n"),  # offerless: resolver says 404
        bye,  # unknown dialog: 481
        bye.replace(b"BYE sip:", b"CANCEL sip:", 1).replace(b"2 BYE", b"2 CANCEL"),
        bye.replace(b"BYE sip:", b"NOTIFY sip:", 1).replace(b"2 BYE", b"2 NOTIFY"),
        bye.replace(b"BYE sip:", b"ACK sip:", 1).replace(b"2 BYE", b"2 ACK"),
        bye.replace(b"BYE sip:", b"OPTIONS sip:", 1).replace(b"2 BYE", b"2 OPTIONS"),
        bye.replace(b"BYE sip:", b"FOO sip:", 1).replace(b"2 BYE", b"2 FOO"),
        base.replace(b"From: \"Alice\" <sip:alice@10.0.0.1>", b"From: <tel:+1555>").replace(b"branch=z9hG4bKabc", b"branch=z9hG4bKtel"),
        base.replace(b"Contact: <sip:alice@10.0.0.1:5060>", b"Contact: *").replace(b"branch=z9hG4bKabc", b"branch=z9hG4bKstar"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnobody\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: unknown\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ]


@pytest.fixture
async def pair():
    calls: asyncio.Queue = asyncio.Queue()

    async def only_100(invite: InboundInvite) -> Decision:
        return Decision.accept() if invite.to_user == "100" else Decision.reject(404)

    callee = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=only_100,
                                      on_incoming=calls, linger=0.2, timers=Timers(t1=0.1))
    caller = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, timers=Timers(t1=0.1))
    yield caller, callee, calls
    await caller.close()
    await callee.close()


async def _complete_a_call(caller: SipUserAgent, callee: SipUserAgent, calls: asyncio.Queue) -> None:
    host, port = callee.local_address
    leg = await caller.dial("100", f"sip:{host}:{port}")
    assert (await asyncio.wait_for(leg.answered, 10)).answered
    inbound = await asyncio.wait_for(calls.get(), 10)
    leg.outbound.push(np.full(1600, 4000, dtype=np.int16))
    heard = []
    while len(heard) < 20:
        frame = await asyncio.wait_for(inbound.inbound.get(), 5)
        heard.append(frame.samples)
    assert np.any(np.concatenate(heard))
    await leg.hangup()
    assert await asyncio.wait_for(inbound.ended, 10) == "remote_hangup"


async def test_ua_survives_malformed_datagrams_and_still_serves_calls(pair):
    caller, callee, calls = pair
    datagrams = MALFORMED + _requests_for(callee)
    for data in datagrams:  # straight into the handler: it must never raise
        callee.endpoint.datagram_received(data, ("127.0.0.1", 9))
    # ...and over a real socket too.
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    for data in datagrams:
        transport.sendto(data, callee.local_address)
    await asyncio.sleep(0.5)
    transport.close()
    assert callee.malformed_datagrams == 2 * (len(MALFORMED) - 2)  # the two empty ones are keep-alives
    assert callee.handler_errors == 0
    await _complete_a_call(caller, callee, calls)
    assert callee.handler_errors == 0 and caller.handler_errors == 0


async def test_ua_fuzzed_requests_never_escape_the_handler(pair):
    caller, callee, calls = pair
    bases = _requests_for(callee)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(bases), _mutations)
    def feed(base, ops):
        callee.endpoint.datagram_received(_mutate(base, ops), ("127.0.0.1", 9))

    feed()
    await asyncio.sleep(0.3)  # let spawned handlers (inbound INVITEs) run
    assert callee.handler_errors == 0
    await _complete_a_call(caller, callee, calls)
