"""Which webhook destinations are allowed: public internet addresses only, unless the operator allows
private ones (`TALKWIRE_ALLOW_PRIVATE_WEBHOOKS`).

A tool author controls the webhook URL, so without this check a tool could make the server call its
own admin endpoints, cloud metadata (169.254.169.254) or the LAN. The host is resolved off the event
loop and *every* address must be public; the caller then connects to the checked address
(`pin_url`, used by server tools and media webhooks alike), so a second DNS answer cannot swap in a
private one. The clients share one TLS context (`tls_context`).
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from typing import Any, NamedTuple

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context (certifi's CA store) of every webhook client. httpx builds one per client
    otherwise: about 20 ms of CPU on the event loop and 0.5 MB each, and each call has two clients
    (server tools, media webhooks), so every new call stalled the other calls' 20 ms cadence."""
    return httpx.create_ssl_context()


class BlockedDestination(Exception):
    """The webhook URL points at a loopback, private, link-local or reserved address.

    `str(exc)` is what the agent (and through it the caller) may see: only that the URL is not allowed. `detail`
    says why (which address the name resolved to), for the operator's log and the call's tool record."""

    PUBLIC_TEXT = "The webhook URL is not allowed."

    def __init__(self, detail: str) -> None:
        super().__init__(self.PUBLIC_TEXT)
        self.detail = detail


# IPv6 forms that carry an IPv4 address the standard library's `is_global` does not look inside.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: a NAT64 gateway reaches the embedded IPv4
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use NAT64, site-specific
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 §2.5.5.1, deprecated "::a.b.c.d"
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879, deprecated but still routed inside some sites


def address_allowed(address: IPAddress) -> bool:
    """True only for a global unicast address. IPv6 addresses that embed an IPv4 one (mapped, 6to4, NAT64,
    IPv4-compatible) are judged by the IPv4 address they lead to; local-use NAT64, Teredo and site-local are
    refused outright."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL_USE or address in SITE_LOCAL or address.teredo is not None:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in NAT64_WELL_KNOWN or address in IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(embedded)
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


class PinnedURL(NamedTuple):
    """Where to connect: `url` with the checked IP in place of the name; `extensions` (TLS SNI) and
    `host_header` keep the configured name so virtual hosts and certificates still work."""
    url: httpx.URL
    extensions: dict[str, Any]
    host_header: str | None


async def pin_url(url: httpx.URL, *, allow_private: bool) -> PinnedURL:
    """The one guard for outgoing webhooks: http(s) only, and (unless `allow_private`) the connection
    goes to a checked public address of the host; else BlockedDestination."""
    if url.scheme not in ("http", "https"):
        raise BlockedDestination(f"only http and https webhooks are allowed, not {url.scheme}")
    if allow_private:
        return PinnedURL(url, {}, None)
    port = url.port or (443 if url.scheme == "https" else 80)
    address = str((await checked_addresses(url.host, port))[0])
    if address == url.host:
        return PinnedURL(url, {}, None)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    host_header = url.host if url.port is None else f"{url.host}:{url.port}"
    return PinnedURL(url.copy_with(host=address), extensions, host_header)
