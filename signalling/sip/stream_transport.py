"""SIP over TCP and TLS (RFC 3261 §18, RFC 5923-style connection reuse), beside the UDP socket.

Messages on a stream are framed by Content-Length (RFC 3261 §18.3); CRLF keep-alives between them are skipped.
One connection per peer address serves both directions: a request we send to a trunk opens (or reuses) the
connection to it, its responses and the trunk's later requests come back on it; a connection a peer opened to
our listening port carries our responses back. Every complete message goes to the same handler as a UDP
datagram (`on_message(data, peer)`), so the layers above do not know the transport.

Limits: `max_message` bytes per message (a larger one closes the connection), `idle_timeout` seconds without
traffic closes a connection, `max_connections` open at once (beyond it new inbound connections are closed at
once). TLS: certificate verification is on unless the context says otherwise (`client_context`).
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Address = tuple[str, int]
OnMessage = Callable[[bytes, tuple[str | int, ...]], None]

CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
STREAM_VIA = {"tcp": b"SIP/2.0/TCP ", "tls": b"SIP/2.0/TLS "}


@dataclass(frozen=True)
class StreamLimits:
    max_message: int = 65_536
    idle_timeout: float = 300.0
    max_connections: int = 1000


class FramingError(ValueError):
    """The stream cannot be read as SIP messages any more (too large, no usable Content-Length)."""


class Framer:
    """Cuts a byte stream into SIP messages by Content-Length."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        messages: list[bytes] = []
        while True:
            while self.buffer[:2] == b"\r\n":  # keep-alives (RFC 5626 §3.5.1) and stray line ends
                del self.buffer[:2]
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > self.max_message:
                    raise FramingError("header block larger than the message limit")
                return messages
            match = CONTENT_LENGTH.search(bytes(self.buffer[:end + 2]))
            if match is None:
                raise FramingError("a message on a stream without Content-Length")
            total = end + 4 + int(match.group(1))
            if total > self.max_message:
                raise FramingError(f"a message of {total} bytes is over the limit")
            if len(self.buffer) < total:
                return messages
            messages.append(bytes(self.buffer[:total]))
            del self.buffer[:total]


class StreamConnection(asyncio.Protocol):
    def __init__(self, owner: StreamTransport, peer: Address | None) -> None:
        self.owner = owner
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.framer = Framer(owner.limits.max_message)
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer is None:  # accepted: keyed by where it comes from
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = (str(host), int(port))
            if len(self.owner.connections) >= self.owner.limits.max_connections:
                self.owner.refused += 1
                transport.close()
                return
        self.owner.connections[self.peer] = self
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            self.owner.framing_errors += 1
            log.debug("SIP stream from %s closed: %s", self.peer, exc)
            self.close()
            return
        assert self.peer is not None
        for message in messages:
            self.owner.on_message(message, self.peer)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._touch()
            self.transport.write(data)

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.owner.limits.idle_timeout, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.peer is not None and self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]


class StreamTransport:
    def __init__(self, on_message: OnMessage, limits: StreamLimits = StreamLimits(),
                 client_context: ssl.SSLContext | None = None) -> None:
        self.on_message = on_message
        self.limits = limits
        self.client_context = client_context or ssl.create_default_context()  # verifies certificates
        self.connections: dict[Address, StreamConnection] = {}
        self.routes: dict[Address, tuple[str, str]] = {}  # destination → (transport, TLS server name)
        self.servers: list[asyncio.Server] = []
        self.refused = 0
        self.framing_errors = 0
        self.connect_errors = 0
        self._pending: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> Address:
        """Accept SIP over TCP (or TLS with `tls`, a server context with our certificate) on host:port."""
        server = await asyncio.get_running_loop().create_server(lambda: StreamConnection(self, None), host, port,
                                                                ssl=tls)
        self.servers.append(server)
        bound = server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    def route(self, dest: Address, transport: str, server_name: str) -> None:
        """Send to `dest` over `transport` ("tcp" or "tls"; `server_name` is what its certificate must name)."""
        self.routes[dest] = (transport, server_name)

    def handles(self, dest: Address) -> bool:
        return dest in self.connections or dest in self.routes

    def send(self, data: bytes, dest: Address) -> None:
        transport = self.routes.get(dest, ("tcp", ""))[0]
        if not data.startswith(b"SIP/2.0 "):  # a request we originate: its top Via names the transport
            data = data.replace(b"SIP/2.0/UDP ", STREAM_VIA[transport], 1)
        conn = self.connections.get(dest)
        if conn is not None:
            conn.send(data)
            return
        if dest not in self.routes:
            return  # the peer's connection is gone and we never had a route to it: nothing to send on
        queued = self._pending.get(dest)
        if queued is not None:
            queued.append(data)
            return
        self._pending[dest] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(dest), name=f"sip-connect-{dest[0]}:{dest[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, dest: Address) -> None:
        transport, server_name = self.routes[dest]
        tls = self.client_context if transport == "tls" else None
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: StreamConnection(self, dest), dest[0], dest[1], ssl=tls,
                server_hostname=server_name if tls else None), 10)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self.connect_errors += 1
            log.info("SIP %s connection to %s:%s failed: %s", transport.upper(), dest[0], dest[1], exc)
            self._pending.pop(dest, None)  # the transaction's timers end what was waiting on it
            return
        for data in self._pending.pop(dest, []):
            self.connections[dest].send(data)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections.values()):
            conn.close()
        await cancel_and_wait(list(self._tasks))
        for server in self.servers:
            await server.wait_closed()


def client_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """The TLS context we connect to trunks with: the system's CAs (or `ca_file`), hostname checked; `verify`
    False turns both off (a test bench, never a real trunk)."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    """The TLS context of our listening port: our certificate chain and key (PEM)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@dataclass(frozen=True)
class StreamOptions:
    """What the user agent opens beside UDP: listening TCP/TLS ports (none by default: outbound streams to trunks
    need none), the TLS contexts, and the limits."""

    tcp_bind: Address | None = None
    tls_bind: Address | None = None
    tls_server: ssl.SSLContext | None = None  # required with tls_bind (server_context)
    tls_client: ssl.SSLContext | None = None  # default: system CAs, certificates verified (client_context)
    limits: StreamLimits = StreamLimits()


async def open_streams(on_message: OnMessage, options: StreamOptions) -> StreamTransport:
    streams = StreamTransport(on_message, options.limits, options.tls_client)
    if options.tcp_bind is not None:
        await streams.listen(*options.tcp_bind)
    if options.tls_bind is not None:
        if options.tls_server is None:
            raise ValueError("a TLS port needs a certificate (server_context)")
        await streams.listen(*options.tls_bind, tls=options.tls_server)
    return streams
