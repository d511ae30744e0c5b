"""Trunk hosts located by RFC 3263 (NAPTR → SRV → A) through a small DNS server on loopback, answers cached for
their TTL, a call placed through the SRV target (sipp), and a silent name server that blocks nothing."""
from __future__ import annotations

import asyncio
import time

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from sipp.harness import SIPP, start_sipp

from signalling.sip.dns import LocateError, SipLocator, Target
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk
from signalling.sip.ua import SipUserAgent


class DnsServer(asyncio.DatagramProtocol):
    """Answers from `zone` {(name, type): [rdata text]} with `ttl`; NXDOMAIN otherwise; `silent` answers nothing."""

    def __init__(self, zone: dict[tuple[str, str], list[str]], ttl: int = 60, silent: bool = False) -> None:
        self.zone = zone
        self.ttl = ttl
        self.silent = silent
        self.queries: list[tuple[str, str]] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if self.silent:
            return
        response = dns.message.make_response(query)
        records = self.zone.get((name, kind))
        if records:
            response.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", kind, *records))
        elif not any(key[0] == name for key in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


async def serve_dns(zone, **kwargs) -> tuple[DnsServer, asyncio.DatagramTransport, int]:
    server = DnsServer(zone, **kwargs)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: server,
                                                                             local_addr=("127.0.0.1", 0))
    return server, transport, transport.get_extra_info("sockname")[1]


def trunk_zone(port: int) -> dict[tuple[str, str], list[str]]:
    return {
        ("trunk.test", "NAPTR"): ['10 50 "s" "SIP+D2U" "" _sip._udp.trunk.test.',
                                  '20 50 "s" "SIP+D2T" "" _sip._tcp.trunk.test.'],
        ("_sip._udp.trunk.test", "SRV"): [f"10 60 {port} sip1.trunk.test.", f"20 10 {port + 1} sip2.trunk.test."],
        ("sip1.trunk.test", "A"): ["127.0.0.1"],
        ("sip2.trunk.test", "A"): ["127.0.0.2"],
        ("plain.test", "A"): ["127.0.0.3"],
    }


async def test_naptr_srv_a_in_order_and_cached_for_the_ttl():
    server, transport, port = await serve_dns(trunk_zone(5090), ttl=1)
    try:
        locator = SipLocator(nameservers=[("127.0.0.1", port)], lifetime=2)
        targets = await locator.locate("trunk.test", None, None)
        assert targets == [Target("127.0.0.1", 5090, "udp"), Target("127.0.0.2", 5091, "udp")]
        assert server.queries == [("trunk.test", "NAPTR"), ("_sip._udp.trunk.test", "SRV"),
                                  ("sip1.trunk.test", "A"), ("sip2.trunk.test", "A")]
        asked = len(server.queries)
        assert await locator.locate("trunk.test", None, None) == targets
        assert len(server.queries) == asked, "answers within their TTL come from the cache"
        await asyncio.sleep(1.2)
        await locator.locate("trunk.test", None, None)
        assert len(server.queries) == 2 * asked, "expired answers are asked again"
        # An explicit port: A only. No NAPTR/SRV: the host's A on 5060. A name nobody knows: an OSError.
        assert await locator.locate("sip1.trunk.test", 5070, None) == [Target("127.0.0.1", 5070, "udp")]
        assert await locator.locate("plain.test", None, None) == [Target("127.0.0.3", 5060, "udp")]
        with pytest.raises(LocateError):
            await locator.locate("nowhere.test", None, None)
    finally:
        transport.close()


def test_a_trunk_uri_without_a_port_is_located_by_srv():
    located = Trunk.parse("sip:alice:pw@trunk.test")
    assert located.locate and located.dns_port == 0 and located.uri_for("+1555") == "sip:+1555@trunk.test"
    assert not Trunk.parse("sip:alice:pw@trunk.test:5070").locate
    assert not Trunk.parse("sip:alice:pw@127.0.0.1").locate


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_a_call_goes_to_the_srv_target(tmp_path):
    sipp = await start_sipp(tmp_path, "uas_answer.xml")
    server, transport, port = await serve_dns(trunk_zone(sipp.port))
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, timers=Timers(t1=0.25))
    ua.endpoint.locator = SipLocator(nameservers=[("127.0.0.1", port)], lifetime=2)
    try:
        leg = await ua.dial("+15551230001", "sip:trunk.test")
        assert (await asyncio.wait_for(leg.answered, 20)).answered
        await leg.hangup("agent_hangup")
        assert await sipp.wait(20) == 0, sipp.explain()
        assert "INVITE sip:+15551230001@trunk.test SIP/2.0" in sipp.messages()
    finally:
        await ua.close()
        transport.close()


async def test_a_silent_name_server_blocks_nothing():
    """Dialling a trunk whose name server never answers: the call fails as a network error after the lookup's
    lifetime, and meanwhile the loop keeps its 10 ms ticks."""
    server, transport, port = await serve_dns({}, silent=True)
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2)
    ua.endpoint.locator = SipLocator(nameservers=[("127.0.0.1", port)], lifetime=1.5)
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    ticking = asyncio.get_running_loop().create_task(ticker())
    try:
        started = time.perf_counter()
        leg = await ua.dial("+15551230001", "sip:silent.test")
        assert await asyncio.wait_for(leg.ended, 10) == "network_error"
        took = time.perf_counter() - started
        assert 1.0 <= took <= 4.0
        assert server.queries and max(lags) < 0.1
        print(f"silent DNS: the dial failed after {took:.2f} s; {len(lags)} ticks of 10 ms, worst lag "
              f"{max(lags) * 1000:.1f} ms; {len(server.queries)} queries unanswered")
    finally:
        ticking.cancel()
        await ua.close()
        transport.close()


async def test_a_host_dns_cannot_carry_is_a_locate_error_not_a_crash() -> None:
    """A stored trunk host with a 64-character label made dnspython raise NameTooLong out of the trunk refresh."""
    locator = SipLocator(nameservers=[("127.0.0.1", 9)], lifetime=1.0)
    with pytest.raises(LocateError):
        await locator.locate("a" * 64 + ".example", None, None)
