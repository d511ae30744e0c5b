"""A phone may ring longer than Timer B (RFC 3261 §17.1.1.2): the INVITE client transaction stops Timer B at the
first provisional response, so only the ring timeout ends the ringing, with a CANCEL.

Before, a call that rang longer than 64·T1 = 32 s failed with 408 / network_error and no CANCEL went out, so the
default 60 s ring timeout never took effect. Both calls run at once (about a minute in all), on the RFC's timers
(T1 = 0.5 s): one callee (sipp) rings and never answers, and our CANCEL reaches it at the 60 s ring timeout; the
other answers after 40 s of ringing, and the call connects.
"""
from __future__ import annotations

import asyncio

import pytest
from sipp.harness import SIPP, start_sipp

from signalling.sip.session import CallResult
from signalling.sip.trunk import Trunk
from signalling.sip.ua import DEFAULT_TIMERS, SipUserAgent

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
]

RING_TIMEOUT = 60.0  # SipUserAgent.dial's default, and TALKWIRE_SIP_RING_TIMEOUT's


async def test_ringing_past_timer_b_is_ended_by_the_ring_timeout_or_answered(tmp_path):
    assert DEFAULT_TIMERS.b == 32.0
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.5)
    (tmp_path / "never").mkdir()
    (tmp_path / "late").mkdir()
    try:
        never = await start_sipp(tmp_path / "never", "uas_ring_no_answer.xml", extra=["-timeout", "100s"])
        late = await start_sipp(tmp_path / "late", "uas_ring_then_answer.xml", extra=["-timeout", "100s"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        unanswered = await ua.dial("+15551230060", Trunk.parse(f"sip:127.0.0.1:{never.port}"))
        answering = await ua.dial("+15551230040", Trunk.parse(f"sip:127.0.0.1:{late.port}"))

        async def answered_at(leg) -> tuple[CallResult, float]:
            result = await asyncio.wait_for(leg.answered, RING_TIMEOUT + 20)
            return result, loop.time() - started

        (late_result, late_after), (never_result, never_after) = await asyncio.gather(
            answered_at(answering), answered_at(unanswered))
        print(f"answered after {late_after:.1f} s of ringing: {late_result}; "
              f"never answered: {never_result} after {never_after:.1f} s")
        assert late_result.answered and late_result.sip_status == 200 and 39 <= late_after < 45
        await answering.hangup()
        assert (never_result.answered, never_result.outcome, never_result.sip_status) == (False, "no_answer", 487)
        assert RING_TIMEOUT <= never_after < RING_TIMEOUT + 5  # our CANCEL at the ring timeout, not 408 at 32 s
        assert await never.wait(30) == 0, never.explain()
        assert await late.wait(30) == 0, late.explain()
        assert "CANCEL sip:+15551230060@127.0.0.1" in never.messages()
        assert ua.handler_errors == 0
    finally:
        await ua.close()
