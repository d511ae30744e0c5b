"""Locating SIP servers (RFC 3263) off the event loop: NAPTR → SRV → A/AAAA, every answer cached for its TTL.

    locator = SipLocator()                               # the system's name servers (or `nameservers=[...]`)
    targets = await locator.locate("trunk.example", None, "udp")   # [Target(ip, port, transport), ...]
    address = await locator.address("sip1.example", 5060)          # one (ip, port): A, then AAAA

A host that is an IP literal is used as it is. A host with an explicit port is looked up by A/AAAA only; without a
port, NAPTR (when no transport is asked for) picks the transport and the SRV name, SRV gives hosts and ports
(ordered by priority, weighted at random within one), and without SRV records the host's A/AAAA on the default
port (5060, 5061 for TLS). Queries go through dnspython's asyncio resolver: nothing blocks the loop, and a silent
name server costs the caller `lifetime` seconds, never the other calls.
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdata
import dns.resolver
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

TRANSPORTS = ("udp", "tcp", "tls")
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}


class Resolve(Protocol):
    """Where to send for host:port (port 0: locate by SRV), over `transport` ("udp", "tcp" or "tls")."""

    def __call__(self, host: str, port: int, transport: str = "udp") -> Awaitable[tuple[str, int]]: ...


class LocateError(OSError):
    """The host has no usable address (or the name servers did not answer in time)."""


@dataclass(frozen=True)
class Target:
    host: str  # an IP address
    port: int
    transport: str

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class SipLocator:
    def __init__(self, nameservers: list[tuple[str, int]] | None = None, lifetime: float = 5.0,
                 transports: tuple[str, ...] = TRANSPORTS) -> None:
        self.nameservers = nameservers
        self.lifetime = lifetime
        self.transports = transports
        self._resolver: dns.asyncresolver.Resolver | None = None  # made on first use (reads resolv.conf)

    @property
    def resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=self.nameservers is None)
            except dns.resolver.NoResolverConfiguration as exc:
                raise LocateError("no name servers configured") from exc
            if self.nameservers is not None:
                resolver.nameservers = [host for host, _ in self.nameservers]
                resolver.port = self.nameservers[0][1]
            resolver.lifetime = self.lifetime
            resolver.timeout = min(2.0, self.lifetime)
            resolver.cache = dns.resolver.Cache()  # answers kept for their TTL (dnspython honours it)
            self._resolver = resolver
        return self._resolver

    async def address(self, host: str, port: int) -> tuple[str, int]:
        """The first address of `host` (A, then AAAA), for a destination with an explicit port."""
        if is_ip(host):
            return host, port
        addresses = await self._addresses(host) or await self._hosts_file(host)
        if not addresses:
            raise LocateError(f"{host} has no address")
        return addresses[0], port

    async def _hosts_file(self, host: str) -> list[str]:
        """Names DNS does not know (localhost, /etc/hosts): the system's resolver, in a thread, bounded."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM), self.lifetime)
        except (TimeoutError, OSError):
            return []
        return [str(info[4][0]) for info in infos]

    async def locate(self, host: str, port: int | None, transport: str | None) -> list[Target]:
        """RFC 3263 §4: where to send requests for sip:`host`[:`port`][;transport=`transport`], best first."""
        if is_ip(host) or port is not None:
            chosen = transport or "udp"
            ip, found_port = await self.address(host, port or DEFAULT_PORT[chosen])
            return [Target(ip, found_port, chosen)]
        candidates = [(transport, SRV_PREFIX[transport] + host)] if transport else await self._naptr(host)
        if not candidates:  # no NAPTR: SRV for each transport we speak, UDP first
            candidates = [(t, SRV_PREFIX[t] + host) for t in self.transports]
        for candidate, srv_name in candidates:
            targets = await self._srv(srv_name, candidate)
            if targets:
                return targets
        chosen = transport or "udp"
        addresses = await self._addresses(host) or await self._hosts_file(host)
        if not addresses:
            raise LocateError(f"{host} has no SRV record and no address")
        return [Target(ip, DEFAULT_PORT[chosen], chosen) for ip in addresses]

    # ---- the queries
    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = await self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return []
        except dns.exception.Timeout as exc:
            raise LocateError(f"no answer from the name servers for {name} {rdtype}") from exc
        except (dns.exception.DNSException, ValueError) as exc:  # a name DNS cannot carry (label > 63, bad IDNA)
            raise LocateError(f"cannot look up {name[:80]!r} {rdtype}: {exc}") from exc
        return list(answer.rrset or [])

    async def _addresses(self, host: str) -> list[str]:
        found = [str(r) for r in await self._query(host, "A")]
        if not found:
            found = [str(r) for r in await self._query(host, "AAAA")]
        return found

    async def _naptr(self, host: str) -> list[tuple[str, str]]:
        """(transport, SRV name) from the NAPTR records of `host` we can use, in order/preference order."""
        usable = []
        for record in await self._query(host, "NAPTR"):
            if not isinstance(record, NAPTR):
                continue
            transport = NAPTR_SERVICES.get(record.service.decode().upper())
            if transport is not None and transport in self.transports and record.flags.decode().lower() == "s":
                usable.append((record.order, record.preference, transport,
                               record.replacement.to_text(omit_final_dot=True)))
        return [(transport, name) for _, _, transport, name in sorted(usable)]

    async def _srv(self, name: str, transport: str) -> list[Target]:
        records = [r for r in await self._query(name, "SRV") if isinstance(r, SRV)]
        targets: list[Target] = []
        for record in order_srv(records):
            target = record.target.to_text(omit_final_dot=True)
            if target in ("", "."):
                continue
            for ip in ([target] if is_ip(target) else await self._addresses(target)):
                targets.append(Target(ip, int(record.port), transport))
        return targets


def order_srv(records: list[SRV]) -> list[SRV]:
    """RFC 2782: lowest priority first; within one priority, a weighted random order."""
    ordered: list[SRV] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            weights = [max(r.weight, 0) + 0.01 for r in group]
            pick = random.choices(range(len(group)), weights)[0]
            ordered.append(group.pop(pick))
    return ordered
