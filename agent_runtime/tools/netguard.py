"""Which webhook destinations are allowed: public internet addresses only, unless the operator allows
private ones (`TALKWIRE_ALLOW_PRIVATE_WEBHOOKS`).

A tool author controls the webhook URL, so without this check a tool could make the server call its
own admin endpoints, cloud metadata (169.254.169.254) or the LAN. The host is resolved off the event
loop and *every* address must be public; the caller then connects to the checked address (see
server.py), so a second DNS answer cannot swap in a private one.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedDestination(Exception):
    """The webhook URL points at a loopback, private, link-local or reserved address."""


def address_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return address_allowed(mapped)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses of `host` (an IP literal resolves to itself). getaddrinfo runs in a thread."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedDestination(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in out:
            out.append(address)
    return out


async def checked_addresses(host: str, port: int) -> list[IPAddress]:
    """The host's addresses, after checking that every one is public; else BlockedDestination."""
    addresses = await resolve(host, port)
    if not addresses:
        raise BlockedDestination(f"{host} has no address")
    for address in addresses:
        if not address_allowed(address):
            raise BlockedDestination(
                f"{host} resolves to {address}, a loopback/private/link-local/reserved address; "
                "webhooks may only reach public addresses (TALKWIRE_ALLOW_PRIVATE_WEBHOOKS=1 allows them)"
            )
    return addresses
