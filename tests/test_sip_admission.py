"""Inbound admission over real UDP on loopback: who may call (trusted sources, digest-authenticated users, 403 for
the rest without a call), per-source INVITE rate limits, and the caps on inbound calls and on dialogs never ACKed
(503 with Retry-After, before any RTP port is taken)."""
from __future__ import annotations

import asyncio

import pytest
from test_sip_protocol import Peer, request

from signalling.sip.admission import Admission, AdmissionPolicy, parse_networks, parse_users
from signalling.sip.digest import authorization
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.sdp import build_sdp
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent

OFFER = build_sdp(address="127.0.0.1", port=9, session_id=1, version=1)


@pytest.fixture
async def peer():
    p = Peer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: p, local_addr=("127.0.0.1", 0))
    p.transport = transport
    p.port = transport.get_extra_info("sockname")[1]
    yield p
    transport.close()


async def start(policy: AdmissionPolicy) -> tuple[SipUserAgent, asyncio.Queue, list[str]]:
    calls: asyncio.Queue = asyncio.Queue()
    asked: list[str] = []

    async def resolve(invite: InboundInvite) -> Decision:
        asked.append(invite.to_user)
        return Decision.accept()

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), resolver=resolve,
                                  on_incoming=calls, linger=0.2, timers=Timers(t1=0.2),
                                  admission=Admission(policy))
    return ua, calls, asked


def invite(ua: SipUserAgent, peer: Peer, n: int, *, cseq: int = 1, extra: tuple[str, ...] = ()) -> bytes:
    return request("INVITE", ua, peer, branch=f"z9hG4bKadm{n}-{cseq}", call_id=f"adm-{n}", cseq=cseq, body=OFFER,
                   ctype="application/sdp", extra=extra)


def test_settings_shapes():
    assert [str(n) for n in parse_networks(["10.0.0.0/8", " 203.0.113.7 ", "::1"])] == \
        ["10.0.0.0/8", "203.0.113.7/32", "::1/128"]
    assert parse_users(["alice:se:cret", "bob:"]) == {"alice": "se:cret", "bob": ""}
    with pytest.raises(ValueError):
        parse_users(["nocolon"])


async def test_an_untrusted_source_gets_403_and_no_call(peer):
    ua, calls, asked = await start(AdmissionPolicy(allow_from=()))
    try:
        peer.transport.sendto(invite(ua, peer, 1), ua.local_address)
        refused = await peer.next(status=403)
        assert refused.call_id == "adm-1"
        await asyncio.sleep(0.3)
        assert not ua.legs and not asked and calls.empty()
        # Trusting the source (a trunk's resolved address) admits the same caller.
        ua.uas.admission.set_trunk_sources(["127.0.0.1"])
        peer.transport.sendto(invite(ua, peer, 2), ua.local_address)
        await peer.next(status=200)
        assert asked == ["100"]
        print("admission counts:", ua.uas.admission.counts)
    finally:
        await ua.close()


async def test_digest_authenticated_caller_is_admitted_and_a_wrong_password_is_403(peer):
    ua, calls, asked = await start(AdmissionPolicy(allow_from=(), users={"alice": "s3cret"}, realm="tw"))
    host, port = ua.local_address
    uri = f"sip:100@{host}:{port}"
    try:
        peer.transport.sendto(invite(ua, peer, 1), ua.local_address)
        challenge = (await peer.next(status=401)).headers.get("WWW-Authenticate")
        assert challenge.startswith('Digest realm="tw"') and 'qop="auth"' in challenge
        assert not ua.legs and not asked

        wrong = authorization(challenge, username="alice", password="nope", method="INVITE", uri=uri)
        peer.transport.sendto(invite(ua, peer, 1, cseq=2, extra=(f"Authorization: {wrong}",)), ua.local_address)
        await peer.next(status=403)
        forged = authorization(challenge.replace('nonce="', 'nonce="0'), username="alice", password="s3cret",
                               method="INVITE", uri=uri)
        peer.transport.sendto(invite(ua, peer, 1, cseq=3, extra=(f"Authorization: {forged}",)), ua.local_address)
        assert "stale=true" in (await peer.next(status=401)).headers.get("WWW-Authenticate")
        assert not ua.legs and not asked

        good = authorization(challenge, username="alice", password="s3cret", method="INVITE", uri=uri)
        peer.transport.sendto(invite(ua, peer, 1, cseq=4, extra=(f"Authorization: {good}",)), ua.local_address)
        await peer.next(status=200)
        assert asked == ["100"] and len(ua.legs) == 1
    finally:
        await ua.close()


async def test_per_source_rate_limit_answers_503_with_retry_after(peer):
    ua, _, asked = await start(AdmissionPolicy(invites_per_second=0.5, invite_burst=2))
    try:
        for n in range(3):
            peer.transport.sendto(invite(ua, peer, n), ua.local_address)
        busy = await peer.next(status=503)
        assert busy.call_id == "adm-2" and int(busy.headers.get("Retry-After")) >= 1
        await asyncio.sleep(0.3)
        assert len(asked) == 2 and sorted(ua.legs) == ["adm-0", "adm-1"]
    finally:
        await ua.close()


async def test_caps_on_unacked_dialogs_and_inbound_calls_refuse_before_any_rtp_port(peer):
    ua, _, asked = await start(AdmissionPolicy(max_unacked=2, max_inbound_calls=3, retry_after=7))
    try:
        for n in range(2):  # two INVITEs never ACKed
            peer.transport.sendto(invite(ua, peer, n), ua.local_address)
            await peer.next(status=200)
        peer.transport.sendto(invite(ua, peer, 2), ua.local_address)
        busy = await peer.next(status=503)
        assert busy.call_id == "adm-2" and busy.headers.get("Retry-After") == "7"
        assert sorted(ua.legs) == ["adm-0", "adm-1"] and len(asked) == 2  # no RTP session, no routing for it

        # ACK them: the unacked cap frees, the cap of three live inbound calls holds.
        for n in range(2):
            leg = ua.legs[f"adm-{n}"]
            ack = request("ACK", ua, peer, branch=f"z9hG4bKack{n}", call_id=f"adm-{n}", to_tag=leg.dialog.local.tag)
            peer.transport.sendto(ack, ua.local_address)
        await asyncio.sleep(0.2)
        peer.transport.sendto(invite(ua, peer, 3), ua.local_address)
        await peer.next(status=200)
        peer.transport.sendto(invite(ua, peer, 4), ua.local_address)
        assert (await peer.next(status=503)).call_id == "adm-4"
        assert len(ua.legs) == 3
        print("admission counts:", ua.uas.admission.counts)
    finally:
        await ua.close()


async def test_through_the_server_an_untrusted_flood_gets_403_and_a_trunk_caller_gets_through(settings, tmp_path):
    """The attack of issue 13 (120 INVITEs never ACKed took every RTP port, each ran an agent for 63 s), sent from
    127.0.0.2 to a live server trusting only 127.0.0.1 (its trunk): every one is answered 403, no call record, no
    RTP port; then sipp from 127.0.0.1 calls the same number and the agent answers it."""
    from sipp.harness import SIPP, start_sipp
    from test_e2e_sip_calls import serving

    if SIPP is None:
        pytest.skip("sipp (Debian sip-tester) is not installed")
    attacker = Peer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: attacker,
                                                                             local_addr=("127.0.0.2", 0))
    attacker.transport = transport
    attacker.port = transport.get_extra_info("sockname")[1]
    try:
        async with serving(settings, sip_bind="127.0.0.1:0", sip_allow_from=["127.0.0.1/32"],
                           sip_invites_per_second=0) as api:
            agent_id = await api.agent(inbound_welcome_message="Hello from the trunk.")
            await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557770000", "agent_id": agent_id,
                                                                "trunk": {"host": "127.0.0.1", "port": 5060}})
            ua = api.server.app.state.runtime.sip.ua
            sip = ua.local_address
            for n in range(120):
                data = request("INVITE", ua, attacker, branch=f"z9hG4bKflood{n}", call_id=f"flood-{n}", body=OFFER,
                               ctype="application/sdp").replace(b"sip:100@", b"sip:+15557770000@")
                data = data.replace(b"127.0.0.1:%d;branch" % attacker.port, b"127.0.0.2:%d;branch" % attacker.port)
                transport.sendto(data, sip)
            answered: dict[str, int] = {}
            while len(answered) < 120:
                response = await asyncio.wait_for(attacker.received.get(), 5)
                answered[response.call_id] = response.status
            assert set(answered.values()) == {403}, answered
            assert not ua.legs and (await api.ok("GET", "/calls"))["calls"] == []
            caller = await start_sipp(tmp_path, "uac", remote=f"{sip[0]}:{sip[1]}",
                                      extra=["-s", "+15557770000", "-d", "3000"])
            assert await caller.wait() == 0, caller.explain()
            calls = (await api.ok("GET", "/calls"))["calls"]
            assert len(calls) == 1
            record, _ = await api.follow(calls[0]["id"])
            counts = ua.uas.admission.counts
        assert record["status"] == "completed" and record["direction"] == "inbound"
        assert counts.forbidden == 120 and counts.admitted == 1
        print(f"untrusted flood: 120 INVITEs from 127.0.0.2 answered 403, no call, no RTP port; the trunk's caller "
              f"connected ({counts})")
    finally:
        transport.close()
