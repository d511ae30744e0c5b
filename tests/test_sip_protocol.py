"""SDP offer/answer, digest, DTMF, trunks, and transaction behaviour of the user agent seen from a
raw UDP socket (retransmissions absorbed, 481 for unknown dialogs, OPTIONS, SIP INFO DTMF)."""
from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from signalling.sip import dtmf
from signalling.sip.digest import DigestError, authorization, digest_response
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import parse
from signalling.sip.sdp import SdpError, build_sdp, negotiate, parse_sdp
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk, TrunkError, parse_hostport
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.ua import SipUserAgent

ANSWER = b"""v=0\r
o=- 1 1 IN IP4 10.0.0.5\r
s=-\r
c=IN IP4 10.0.0.5\r
t=0 0\r
m=audio 40000 RTP/AVP 8 96\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:96 telephone-event/8000\r
a=sendonly\r
"""


def test_offer_lists_pcmu_pcma_and_telephone_event_at_20ms():
    offer = parse_sdp(build_sdp(address="192.0.2.1", port=20000, session_id=1, version=1))
    m = offer.audio()
    assert m.formats == [0, 8, 101] and m.port == 20000
    assert m.rtpmap[101] == ("telephone-event", 8000)
    assert b"a=ptime:20" in build_sdp(address="192.0.2.1", port=20000, session_id=1, version=1)


def test_answer_choice_dtmf_type_and_hold_direction_are_followed():
    neg = negotiate(parse_sdp(ANSWER))
    assert (neg.address, neg.port, neg.payload_type, neg.codec, neg.dtmf_payload_type) == ("10.0.0.5", 40000, 8, 8, 96)
    assert neg.direction == "recvonly" and not neg.we_send and neg.we_receive


def test_dynamic_payload_type_for_pcmu_is_understood_and_answered_with_its_name():
    offer = parse_sdp(b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 96 97\r\n"
                      b"a=rtpmap:96 PCMU/8000\r\na=rtpmap:97 telephone-event/8000\r\n")
    neg = negotiate(offer)
    assert (neg.payload_type, neg.codec, neg.dtmf_payload_type) == (96, 0, 97)
    answer = build_sdp(address="192.0.2.1", port=20000, session_id=1, version=1, payload_types=(96,), codec=neg.codec,
                       dtmf_payload_type=97)
    assert parse_sdp(answer).audio().rtpmap[96] == ("PCMU", 8000)


def test_answer_without_a_usable_codec_is_refused():
    with pytest.raises(SdpError):
        negotiate(parse_sdp(ANSWER.replace(b"RTP/AVP 8 96", b"RTP/AVP 18 96").replace(b"a=rtpmap:8 PCMA/8000", b"a=rtpmap:18 G729/8000")))
    with pytest.raises(SdpError):
        negotiate(parse_sdp(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\n"))


def test_digest_matches_rfc2617_example():
    # RFC 2617 §3.5
    assert digest_response(username="Mufasa", password="Circle Of Life", realm="testrealm@host.com",
                           nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET", uri="/dir/index.html",
                           qop="auth", nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_authorization_header_and_unsupported_challenges():
    value = authorization('Digest realm="r", nonce="n", opaque="o"', username="u", password="p", method="INVITE", uri="sip:x@y")
    assert 'username="u"' in value and 'opaque="o"' in value and "qop" not in value
    with pytest.raises(DigestError):
        authorization('Digest realm="r", nonce="n", algorithm=SHA-256', username="u", password="p", method="INVITE", uri="sip:x@y")
    with pytest.raises(DigestError):
        authorization('Basic realm="r"', username="u", password="p", method="INVITE", uri="sip:x@y")


def test_dtmf_plan_and_receiver():
    plan = dtmf.digit_plan("1#")
    packets = [p for p in plan if p is not None]
    assert len(packets) == 2 * (dtmf.TONE_FRAMES + dtmf.END_REPEATS) and plan.count(None) == dtmf.GAP_FRAMES
    first = dtmf.parse_event(packets[0][0])
    assert first.digit == "1" and not first.end and packets[0][1]  # marker on the first packet
    rx = dtmf.DtmfReceiver()
    digits = [rx.feed(1000 if i < 8 else 2000, p[0]) for i, p in enumerate(packets)]
    assert [d for d in digits if d] == ["1", "#"]
    with pytest.raises(dtmf.DtmfError):
        dtmf.digit_plan("12x")


def test_trunk_uri():
    t = Trunk.parse("sip:alice:secret@127.0.0.1:5070;transport=udp")
    assert (t.host, t.port, t.username, t.password) == ("127.0.0.1", 5070, "alice", "secret")
    assert t.uri_for("+15551234567") == "sip:+15551234567@127.0.0.1:5070"
    assert Trunk.parse("sip:+15550001111@pbx.example").default_caller_id == "+15550001111"
    for bad in ("http://x", "sip:a@b;transport=sctp", "sip:a@b:99999"):
        with pytest.raises(TrunkError):
            Trunk.parse(bad)
    assert parse_hostport("127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert parse_hostport("0.0.0.0") == ("0.0.0.0", 5060)
    assert parse_hostport("127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(TrunkError):
        parse_hostport("host:port")


def test_baresip_port_probe_skips_a_port_whose_tls_neighbour_is_taken(monkeypatch):
    """baresip listens on UDP+TCP `port` and TLS on `port + 1`: the harness must not hand out a port whose
    neighbour is taken (baresip would exit with "SIP/TLS transport failed: Address already in use")."""
    from sipp import harness

    taken = harness.free_sip_listen_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", taken + 1))
        blocker.listen()
        offered = iter([taken])
        real = harness.free_udp_port
        monkeypatch.setattr(harness, "free_udp_port", lambda pair=False: next(offered, None) or real())
        assert harness.free_sip_listen_port() != taken


# ---------------------------------------------------------------- the UA on the wire, from a raw socket

@pytest.fixture
async def callee():
    calls: asyncio.Queue = asyncio.Queue()

    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept({"to": invite.to_user})

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=resolve,
                                  on_incoming=calls, linger=0.2, timers=Timers(t1=0.2))
    yield ua, calls
    await ua.close()


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.received.put_nowait(parse(data))

    async def next(self, status: int | None = None, method: str | None = None, timeout: float = 5):
        while True:
            msg = await asyncio.wait_for(self.received.get(), timeout)
            if status is not None and getattr(msg, "status", None) == status:
                return msg
            if method is not None and getattr(msg, "method", None) == method:
                return msg


@pytest.fixture
async def peer():
    p = Peer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: p, local_addr=("127.0.0.1", 0))
    p.transport = transport
    p.port = transport.get_extra_info("sockname")[1]
    yield p
    transport.close()


def request(method: str, ua: SipUserAgent, peer: Peer, *, branch: str, call_id: str = "call-1", cseq: int = 1,
            to_tag: str | None = None, body: bytes = b"", ctype: str | None = None,
            extra: tuple[str, ...] = ()) -> bytes:
    host, port = ua.local_address
    lines = [
        f"{method} sip:100@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch};rport",
        f"From: <sip:200@127.0.0.1:{peer.port}>;tag=peer",
        f"To: <sip:100@{host}:{port}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:200@127.0.0.1:{peer.port}>",
        "Max-Forwards: 70",
        *extra,
    ]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_retransmitted_invite_is_absorbed_and_2xx_is_retransmitted_until_ack(callee, peer):
    ua, calls = callee
    offer = build_sdp(address="127.0.0.1", port=9, session_id=1, version=1)
    invite = request("INVITE", ua, peer, branch="z9hG4bKinv1", body=offer, ctype="application/sdp")
    peer.transport.sendto(invite, ua.local_address)
    ok = await peer.next(status=200)
    peer.transport.sendto(invite, ua.local_address)  # a retransmission: same 200 again, not a new call
    again = await peer.next(status=200)
    assert again.to.tag == ok.to.tag
    assert (await peer.next(status=200, timeout=3)).to.tag == ok.to.tag  # no ACK yet: the UA re-sends the 2xx
    leg = await asyncio.wait_for(calls.get(), 5)
    assert calls.empty() and len(ua.legs) == 1 and leg.context == {"to": "100"}
    ack = request("ACK", ua, peer, branch="z9hG4bKack1", to_tag=ok.to.tag)
    peer.transport.sendto(ack, ua.local_address)
    info = request("INFO", ua, peer, branch="z9hG4bKinfo", cseq=2, to_tag=ok.to.tag, body=b"Signal=5\r\nDuration=160\r\n",
                   ctype="application/dtmf-relay")
    peer.transport.sendto(info, ua.local_address)
    assert (await peer.next(status=200)).cseq == (2, "INFO")
    assert await asyncio.wait_for(leg.events.get(), 5) == {"type": "dtmf", "digits": "5"}
    bye = request("BYE", ua, peer, branch="z9hG4bKbye", cseq=3, to_tag=ok.to.tag)
    peer.transport.sendto(bye, ua.local_address)
    assert (await peer.next(status=200)).cseq == (3, "BYE")
    assert await asyncio.wait_for(leg.ended, 5) == "remote_hangup"
    assert ua.handler_errors == 0


async def test_unknown_dialog_gets_481_and_options_200(callee, peer):
    ua, _ = callee
    peer.transport.sendto(request("BYE", ua, peer, branch="z9hG4bKx1", to_tag="nope"), ua.local_address)
    assert (await peer.next(status=481)).cseq == (1, "BYE")
    peer.transport.sendto(request("OPTIONS", ua, peer, branch="z9hG4bKx2"), ua.local_address)
    ok = await peer.next(status=200)
    assert "INVITE" in ok.headers.get("Allow") and "NOTIFY" in ok.headers.get("Allow")
    peer.transport.sendto(request("SUBSCRIBE", ua, peer, branch="z9hG4bKx3"), ua.local_address)
    await peer.next(status=405)


async def test_options_advertises_only_what_is_implemented(callee, peer):
    """REFER is sent by us but not accepted, so it is not in Allow; no extension (e.g. `replaces`) is Supported."""
    ua, _ = callee
    peer.transport.sendto(request("OPTIONS", ua, peer, branch="z9hG4bKopt"), ua.local_address)
    ok = await peer.next(status=200)
    allowed = {m.strip() for m in ok.headers.get("Allow").split(",")}
    assert allowed == {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "NOTIFY", "INFO"}
    assert ok.headers.get("Supported") is None and ok.headers.get("Accept") == "application/sdp"


async def answered_call(ua: SipUserAgent, peer: Peer, calls: asyncio.Queue, *, extra: tuple[str, ...] = ()):
    """An inbound call from `peer`, answered and ACKed: (leg, our 200)."""
    offer = build_sdp(address="127.0.0.1", port=9, session_id=1, version=1)
    peer.transport.sendto(request("INVITE", ua, peer, branch="z9hG4bKinv", body=offer, ctype="application/sdp",
                                  extra=extra), ua.local_address)
    ok = await peer.next(status=200)
    peer.transport.sendto(request("ACK", ua, peer, branch="z9hG4bKack", to_tag=ok.to.tag), ua.local_address)
    return await asyncio.wait_for(calls.get(), 5), ok


async def test_inbound_refer_is_refused_405_and_the_call_goes_on(callee, peer):
    ua, calls = callee
    leg, ok = await answered_call(ua, peer, calls)
    assert "REFER" not in ok.headers.get("Allow")
    refer = request("REFER", ua, peer, branch="z9hG4bKref", cseq=2, to_tag=ok.to.tag,
                    extra=("Refer-To: <sip:300@127.0.0.1>",))
    peer.transport.sendto(refer, ua.local_address)
    refused = await peer.next(status=405)
    assert refused.cseq == (2, "REFER") and "REFER" not in refused.headers.get("Allow")
    await asyncio.sleep(0.1)
    assert not leg.ended.done()
    peer.transport.sendto(request("BYE", ua, peer, branch="z9hG4bKbye", cseq=3, to_tag=ok.to.tag), ua.local_address)
    assert await asyncio.wait_for(leg.ended, 5) == "remote_hangup"


async def test_the_resolver_and_the_leg_see_the_invites_headers(peer):
    """Routing can use any header of the INVITE (here Diversion and an X- header); the leg keeps the same value."""
    calls: asyncio.Queue = asyncio.Queue()
    seen: list[InboundInvite] = []

    async def route(invite: InboundInvite) -> Decision:
        seen.append(invite)
        return Decision.accept(invite.header("X-Campaign"))

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=route,
                                  on_incoming=calls, linger=0.2, timers=Timers(t1=0.2))
    try:
        leg, _ = await answered_call(ua, peer, calls, extra=(
            "Diversion: <sip:+15550001111@trunk.example>;reason=unconditional", "X-Campaign: spring-42"))
        (invite,) = seen
        assert (invite.to_user, invite.from_user) == ("100", "200")
        assert invite.header("diversion") == "<sip:+15550001111@trunk.example>;reason=unconditional"
        assert invite.header("X-Campaign") == "spring-42" and invite.header("X-Missing") is None
        assert invite.source == ("127.0.0.1", peer.port)
        assert leg.invite is invite and leg.context == "spring-42"
    finally:
        await ua.close()


async def test_cancel_of_an_unanswered_inbound_call(peer):
    gate = asyncio.Event()

    async def slow(invite: InboundInvite) -> Decision:
        await gate.wait()  # e.g. a slow database lookup
        return Decision.accept()

    calls: asyncio.Queue = asyncio.Queue()
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=slow, on_incoming=calls,
                                  timers=Timers(t1=0.2))
    try:
        invite = request("INVITE", ua, peer, branch="z9hG4bKc1", body=build_sdp(address="127.0.0.1", port=9, session_id=1, version=1),
                         ctype="application/sdp")
        peer.transport.sendto(invite, ua.local_address)
        await peer.next(status=100)
        peer.transport.sendto(request("CANCEL", ua, peer, branch="z9hG4bKc1"), ua.local_address)
        assert (await peer.next(status=200)).cseq == (1, "CANCEL")
        assert (await peer.next(status=487)).cseq == (1, "INVITE")
        gate.set()
        await asyncio.sleep(0.3)
        assert calls.empty() and not ua.legs
    finally:
        await ua.close()


async def test_outbound_to_a_dead_port_is_a_network_error():
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), timers=Timers(t1=0.02))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        leg = await ua.dial("+15550000000", f"sip:127.0.0.1:{dead}")
        result = await asyncio.wait_for(leg.answered, 10)
        assert (result.answered, result.outcome, result.sip_status) == (False, "network_error", 408)
    finally:
        await ua.close()


async def test_ua_to_ua_call_with_rfc4733_dtmf_both_ways():
    calls: asyncio.Queue = asyncio.Queue()
    a = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999))
    b = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), on_incoming=calls)
    try:
        host, port = b.local_address
        leg = await a.dial("100", f"sip:{host}:{port}")
        assert (await asyncio.wait_for(leg.answered, 5)).answered
        inbound = await asyncio.wait_for(calls.get(), 5)
        await asyncio.wait_for(leg.send_dtmf("9*"), 5)
        got = [await asyncio.wait_for(inbound.events.get(), 5) for _ in range(2)]
        assert got == [{"type": "dtmf", "digits": "9"}, {"type": "dtmf", "digits": "*"}]
        await asyncio.wait_for(inbound.send_dtmf("0"), 5)
        assert await asyncio.wait_for(leg.events.get(), 5) == {"type": "dtmf", "digits": "0"}
        inbound.outbound.push(np.full(800, 1000, dtype=np.int16))
        await inbound.hangup()
        assert await asyncio.wait_for(leg.ended, 5) == "remote_hangup"
        assert inbound.ended.result() == "agent_hangup"
    finally:
        await a.close()
        await b.close()


async def test_closing_the_ua_hangs_up_its_calls():
    calls: asyncio.Queue = asyncio.Queue()
    a = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999))
    b = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), on_incoming=calls, linger=0.2)
    try:
        host, port = b.local_address
        leg = await a.dial("100", f"sip:{host}:{port}")
        assert (await asyncio.wait_for(leg.answered, 5)).answered
        inbound = await asyncio.wait_for(calls.get(), 5)
        await a.close()
        assert leg.ended.result() == "agent_hangup"
        assert await asyncio.wait_for(inbound.ended, 5) == "remote_hangup"
        # RTP arriving after the BYE (peers keep sending for a while) is absorbed, not delivered.
        inbound.rtp.datagram_received(b"\x80\x00\x00\x01" + bytes(8) + bytes(160), ("127.0.0.1", 9))
        assert inbound.rtp.invalid_received == 0 and inbound.inbound.get_nowait() is None
    finally:
        await a.close()
        await b.close()


class SteppedClock:
    """Test double for the shared MediaClock: hands out the given tick indices, then blocks forever."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = list(indices)

    async def tick(self):
        from media.pacing import Tick

        if not self.indices:
            await asyncio.Event().wait()
        return Tick(self.indices.pop(0), 0.0, 0.0)


async def test_media_loop_runs_the_ticks_a_stalled_loop_missed():
    """Ticks 1, 2, then 5 (3 and 4 fired while the loop was stalled): 5 media ticks, none lost; a
    re-anchored clock (index back to 1) counts as one tick."""
    runs: list[float] = []

    class Engine(RtpMediaEngine):
        def tick(self, scheduled: float) -> None:
            runs.append(scheduled)

    engine = Engine(SteppedClock([1, 2, 5, 1]))
    task = asyncio.ensure_future(engine.run())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await engine.stop()
    assert len(runs) == 6
