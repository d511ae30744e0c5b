"""REGISTER against sipp acting as a registrar (tests/sipp/registrar.xml): a 503 first (back-off and retry), a 401
digest challenge checked with verifyauth, the binding granted, then an INVITE to the registered Contact that
reaches the agent, and the refresh before the binding runs out (challenged again)."""
from __future__ import annotations

import asyncio
import time

import pytest
from sipp.harness import SIPP, start_sipp

from signalling.sip.message import parse
from signalling.sip.register import Registration, granted_expiry
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk
from signalling.sip.ua import SipUserAgent

pytestmark = [pytest.mark.sip, pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")]


def test_trunk_uri_asks_for_registration():
    assert Trunk.parse("sip:alice:pw@127.0.0.1:5070;register=yes").register
    assert not Trunk.parse("sip:alice:pw@127.0.0.1:5070").register


def test_granted_expiry_prefers_our_contacts_parameter():
    resp = parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\n"
                 b"Call-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:other@1.2.3.4>;expires=10, "
                 b"<sip:alice@10.0.0.1:5060>;expires=120\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
    assert granted_expiry(resp, "<sip:alice@10.0.0.1:5060>", 3600) == 120
    assert granted_expiry(resp, "<sip:bob@10.0.0.1:5060>", 3600) == 600


async def test_register_with_digest_then_the_call_on_the_binding_reaches_the_agent(tmp_path):
    calls: asyncio.Queue = asyncio.Queue()
    routed: list[str] = []

    async def resolve(invite: InboundInvite) -> Decision:
        routed.append(invite.to_user)
        return Decision.accept({"agent": "a1"})

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=resolve,
                                  on_incoming=calls, linger=0.2, timers=Timers(t1=0.25))
    sipp = await start_sipp(tmp_path, "registrar.xml", keys={"expires": "12", "number": "+15557770000"},
                            extra=["-rtp_echo"])
    trunk = Trunk.parse(f"sip:alice:secret@127.0.0.1:{sipp.port};register=yes")
    reg = Registration(ua.transactions, ua.builder, ua.endpoint.resolve, trunk, expires=3600, retry_min=0.5)
    states: list[str] = []
    try:
        reg.start()
        started = time.monotonic()
        leg = None
        while time.monotonic() - started < 30:
            if not states or states[-1] != reg.status.state:
                states.append(reg.status.state)
            if leg is None and not calls.empty():
                leg = calls.get_nowait()
            if reg.cseq >= 5 and reg.status.state == "registered":
                break  # 503, 401, 200, then the refresh's 401 and 200
            await asyncio.sleep(0.05)
        assert "failed" in states and states.index("failed") < states.index("registered"), states
        assert reg.status.last_error is None and reg.status.expires_at > time.time()
        assert leg is not None, "the INVITE to the registered Contact did not reach the agent"
        assert leg.direction == "inbound" and leg.context == {"agent": "a1"} and routed == ["+15557770000"]
        assert await asyncio.wait_for(leg.ended, 10) == "remote_hangup"
        assert reg.cseq == 5 and reg.status.state == "registered"
        print("registration states:", states, "REGISTERs sent:", reg.cseq)
        assert await sipp.wait(20) == 0, sipp.explain()
    finally:
        await reg.close(timeout=0.5)
        await ua.close()
        if sipp.proc.returncode is None:
            sipp.proc.kill()
            await sipp.wait(5)
    assert reg.status.state == "unregistered"


async def test_a_stored_trunk_with_register_shows_its_registration_and_its_calls_reach_the_agent(settings, tmp_path):
    """The server side: `register: true` on a stored trunk registers at once (state in GET /sip-trunks and in
    /metrics); the trunk's host is the only trusted source (TALKWIRE_SIP_ALLOW_FROM empty), and the call it
    sends to the binding is answered by the number's agent."""
    from test_e2e_sip_calls import serving

    sipp = await start_sipp(tmp_path, "registrar.xml", keys={"expires": "12", "number": "+15557770000"},
                            extra=["-rtp_echo"])
    try:
        async with serving(settings, sip_bind="127.0.0.1:0", sip_allow_from=[]) as api:
            agent_id = await api.agent(inbound_welcome_message="Registered line, hello.")
            trunk = await api.ok("POST", "/sip-trunks", json={"host": "127.0.0.1", "port": sipp.port,
                                                              "username": "alice", "password": "secret",
                                                              "register": True})
            assert trunk["register"] is True and trunk["registration"]["state"] in ("registering", "failed")
            await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557770000", "agent_id": agent_id,
                                                                "use_existing_credentials": True})
            seen: list[dict] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                listed = (await api.ok("GET", "/sip-trunks"))["trunks"][0]["registration"]
                if not seen or seen[-1]["state"] != listed["state"]:
                    seen.append(listed)
                if listed["state"] == "registered":
                    break
                await asyncio.sleep(0.1)
            states = [s["state"] for s in seen]
            assert states[-1] == "registered" and "failed" in states, seen
            assert seen[states.index("failed")]["last_error"] == "503 Service Unavailable"
            assert seen[-1]["last_error"] is None
            assert seen[-1]["expires_at"] is not None
            metrics = (await api.request("GET", "/metrics")).text
            assert 'talkwire_sip_registrations{state="registered"} 1.0' in metrics
            calls: list = []
            while loop.time() < deadline + 20 and not calls:
                calls = (await api.ok("GET", "/calls"))["calls"]
                await asyncio.sleep(0.2)
            assert len(calls) == 1
            record, _ = await api.follow(calls[0]["id"])
            assert await sipp.wait(20) == 0, sipp.explain()  # the refresh was challenged and granted too
        assert record["direction"] == "inbound" and record["agent_id"] == agent_id
        assert record["phone_to"] == "+15557770000" and record["status"] == "completed"
        agent_said = [t["text"] for t in record["transcript"] if t["role"] == "agent"]
        assert agent_said[:1] == ["Registered line, hello."], record["transcript"]
        print("registration as GET /sip-trunks showed it:", seen)
    finally:
        if sipp.proc.returncode is None:
            sipp.proc.kill()
            await sipp.wait(5)


async def test_register_over_tcp_and_the_call_comes_back_on_the_connection(tmp_path):
    """The same registrar over TCP (`-t t1`): REGISTER, the challenge, the binding with `;transport=tcp`, and the
    INVITE to it arriving on the connection the registration opened."""
    from test_sip_tcp import tcp_sipp

    calls: asyncio.Queue = asyncio.Queue()

    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept()

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=resolve,
                                  on_incoming=calls, linger=0.2, timers=Timers(t1=0.25))
    sipp = await tcp_sipp(tmp_path, "registrar.xml", extra=["-key", "expires", "12", "-key", "number", "+15557770000",
                                                             "-rtp_echo"])
    trunk = Trunk.parse(f"sip:alice:secret@127.0.0.1:{sipp.port};transport=tcp;register=yes")
    reg = Registration(ua.transactions, ua.builder, ua.endpoint.resolve, trunk, retry_min=0.5)
    try:
        reg.start()
        leg = await asyncio.wait_for(calls.get(), 20)
        assert reg.status.state == "registered" and leg.direction == "inbound"
        assert await asyncio.wait_for(leg.ended, 10) == "remote_hangup"
        assert await sipp.wait(30) == 0, sipp.explain()
        assert ";transport=tcp>" in sipp.messages() and "Via: SIP/2.0/TCP" in sipp.messages()
        assert len(ua.endpoint.streams.connections) <= 1
    finally:
        await reg.close(timeout=0.5)
        await ua.close()
        if sipp.proc.returncode is None:
            sipp.proc.kill()
            await sipp.wait(5)
