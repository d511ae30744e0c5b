"""The standing corpus (tests/sip_corpus: every defect of issue 13 and before) replayed, and a bounded fuzz run of
the parser, SDP negotiation, the RTP receive path and the transaction layer (targets in tests/sip_fuzz.py; a few
hundred examples each, seconds). `scripts/fuzz_sip.py` runs the same targets for longer."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from sip_fuzz import (
    AMPLIFICATION,
    INVITE,
    TARGETS,
    Wire,
    check_rtp,
    corpus,
    feed_transactions,
    rtp_data,
    transaction_data,
)
from sip_raw_peer import Dialog, Socket

from media import g711
from signalling.sip.message import SipParseError, parse
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.rtp import RtpSession
from signalling.sip.sdp import Negotiated, SdpError, negotiate, parse_sdp
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- the corpus ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "data", "expect"), corpus("sip"), ids=[e[0] for e in corpus("sip")])
def test_corpus_sip_messages(name, data, expect):
    if expect == "ok":
        parse(data)
        return
    with pytest.raises(SipParseError) as raised:
        parse(data)
    assert (raised.value.request is not None) == (expect == "400"), "whether a 400 can be addressed"


@pytest.mark.parametrize(("name", "data", "expect"), corpus("sdp"), ids=[e[0] for e in corpus("sdp")])
def test_corpus_sdp_offers(name, data, expect):
    if expect == "ok":
        negotiate(parse_sdp(data))
        return
    with pytest.raises(SdpError):
        negotiate(parse_sdp(data))


@pytest.mark.parametrize(("name", "data", "expect"), corpus("rtp"), ids=[e[0] for e in corpus("rtp")])
def test_corpus_rtp_packets(name, data, expect):
    rtp = RtpSession()
    rtp.apply(Negotiated("192.0.2.10", 4000, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.receiving = True
    rtp._receive(data, ("192.0.2.10", 4000))
    assert rtp.jitter.received == (1 if expect == "ok" else 0)


@pytest.fixture
async def ua():
    async def only_100(invite: InboundInvite) -> Decision:
        return Decision.accept() if invite.to_user == "100" else Decision.reject(404)

    agent = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=only_100,
                                     on_incoming=asyncio.Queue(), linger=0.1, timers=Timers(t1=0.02, t2=0.08, t4=0.1))
    yield agent
    await agent.close()


async def test_corpus_over_the_wire(ua):
    """Every corpus message and every corpus SDP (as an INVITE's offer) sent to a user agent: 400 and 488 where
    the manifest says, nothing else escapes, and the agent still answers OPTIONS."""
    peer = await Socket.open()
    host, port = ua.local_address
    expected_400, expected_488 = set(), set()
    for name, data, expect in corpus("sip"):
        peer.send(data.replace(b"127.0.0.1:5060", f"{host}:{port}".encode()), (host, port))
        if expect == "400":
            expected_400.add(name)
    for n, (_name, data, expect) in enumerate(corpus("sdp")):
        dialog = Dialog("100", (host, port), peer.address, call_id=f"sdp-{n}")
        peer.send(dialog.request("INVITE", data), (host, port))
        if expect == "488":
            expected_488.add(f"sdp-{n}")
    peer.send(Dialog("100", (host, port), peer.address).request("OPTIONS"), (host, port))
    await peer.response(200, "OPTIONS")
    await asyncio.sleep(0.3)
    assert len(peer.answered(400)) == len(expected_400)
    assert peer.answered(488) == expected_488
    assert ua.handler_errors == 0
    peer.close()


# ---- bounded fuzzing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target):
    strategy, check = TARGETS[target]
    BOUNDED(given(strategy())(check))()


def test_fuzz_rtp_keeps_the_stranger_out_even_in_long_sequences():
    longer = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    longer(given(rtp_data())(check_rtp))()


async def test_fuzz_transaction_layer_floods_and_storms(ua):
    """Floods of requests for a handful of transactions, each repeated up to 50 times at once (a retransmission
    storm), ACKs, CANCELs and stray responses for anything: no handler error, no more server transactions than
    distinct requests, and no amplification: bytes sent back stay within a small multiple of bytes received,
    timers included."""
    wire = Wire()
    ua.endpoint.send_raw = wire
    received = 0

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(transaction_data())
    def feed(sequence):
        nonlocal received
        received += feed_transactions(ua, sequence)
        assert len(ua.transactions.server) <= 6 * 6 * 7 * 3  # branches x calls x methods x CSeqs

    feed()
    await asyncio.sleep(1.0)  # the timers: Timer G copies, the 2xx copies, Timer H (64 x 20 ms) and its BYEs
    print(f"fed {received} bytes, sent back {wire.sent} bytes in {wire.datagrams} datagrams")
    assert ua.handler_errors == 0
    assert wire.sent <= AMPLIFICATION * received
    storm = INVITE.replace(b"127.0.0.1:5060", "{}:{}".format(*ua.local_address).encode())
    before, started = wire.datagrams, asyncio.get_running_loop().time()
    for _ in range(200):  # one INVITE 200 times at once: answered once per T1/2 at most, not 200 times
        ua.endpoint.datagram_received(storm, ("127.0.0.1", 9))
    elapsed = asyncio.get_running_loop().time() - started
    assert wire.datagrams - before <= 2 + elapsed / (ua.timers.t1 / 2)
