"""SIP over TCP: stream framing by Content-Length, the stream limits (message size, idle timeout, connection
count), an outbound call to sipp over TCP (`;transport=tcp` on the trunk, `-t t1`) and an inbound one from sipp
to our listening TCP port."""
from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest
from sipp.harness import SCENARIOS, SIPP, Sipp, free_sip_listen_port, free_udp_port

from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.stream_transport import Framer, FramingError, StreamLimits, StreamOptions, StreamTransport
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk
from signalling.sip.ua import SipUserAgent

MESSAGE = (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello")


def test_framing_by_content_length_across_chunks_and_keepalives():
    framer = Framer(max_message=1024)
    stream = b"\r\n\r\n" + MESSAGE + b"\r\n" + MESSAGE.replace(b"l: 5", b"Content-Length: 5")
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += framer.feed(stream[i:i + 7])
    assert got == [MESSAGE, MESSAGE.replace(b"l: 5", b"Content-Length: 5")] and not framer.buffer
    with pytest.raises(FramingError):
        Framer(max_message=64).feed(MESSAGE.replace(b"l: 5", b"Content-Length: 100"))
    with pytest.raises(FramingError):
        Framer(max_message=1024).feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")  # no Content-Length
    with pytest.raises(FramingError):
        Framer(max_message=64).feed(b"X" * 100)  # a header block that never ends


def test_trunk_uri_transports():
    assert Trunk.parse("sip:a@127.0.0.1;transport=tcp").transport == "tcp"
    tls = Trunk.parse("sip:a@pbx.example;transport=tls")
    assert tls.transport == "tls" and tls.port == 5061


async def test_stream_limits_connections_and_idle_timeout():
    received: list[bytes] = []
    streams = StreamTransport(lambda data, peer: received.append(data),
                              StreamLimits(max_message=256, idle_timeout=0.5, max_connections=2))
    host, port = await streams.listen("127.0.0.1", 0)
    try:
        first = await asyncio.open_connection(host, port)
        second = await asyncio.open_connection(host, port)
        await asyncio.sleep(0.1)
        third = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(third[0].read(), 2) == b"", "a connection over the limit is closed"
        assert streams.refused == 1 and len(streams.connections) == 2
        first[1].write(MESSAGE)
        await first[1].drain()
        await asyncio.sleep(0.1)
        assert received == [MESSAGE]
        first[1].write(b"INVITE sip:x SIP/2.0\r\nContent-Length: 100000\r\n\r\n")
        assert await asyncio.wait_for(first[0].read(), 2) == b"", "an oversized message closes its connection"
        assert streams.framing_errors == 1
        assert await asyncio.wait_for(second[0].read(), 2) == b"", "an idle connection is closed"
        await asyncio.sleep(0.05)
        assert not streams.connections
    finally:
        await streams.close()


async def tcp_sipp(workdir: Path, scenario: str, *, remote: str | None = None, extra: list[str] = ()) -> Sipp:
    """sipp over TCP (one connection, `-t t1`); without `remote` it listens and this returns once it accepts."""
    assert SIPP is not None
    port, media = free_sip_listen_port(), free_udp_port(pair=True)  # sipp binds TCP (and UDP) on its port
    args = [SIPP, *(["-sf", str(SCENARIOS / scenario)] if scenario.endswith(".xml") else ["-sn", scenario]),
            "-t", "t1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port), "-mp", str(media), "-m", "1",
            "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_msg", "-trace_err", *extra]
    if remote:
        args.append(remote)
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sipp = Sipp(proc, port, media, workdir)
    if not remote:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)
    return sipp


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_outbound_call_over_tcp(tmp_path):
    sipp = await tcp_sipp(tmp_path, "uas_answer.xml")
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, timers=Timers(t1=0.25))
    try:
        leg = await ua.dial("+15551230001", f"sip:127.0.0.1:{sipp.port};transport=tcp")
        assert (await asyncio.wait_for(leg.answered, 20)).answered
        await asyncio.sleep(1.0)
        assert leg.rtp.packets_sent > 20
        await leg.hangup("agent_hangup")
        assert await sipp.wait(20) == 0, sipp.explain()
        messages = sipp.messages()
        assert "Via: SIP/2.0/TCP" in messages and "BYE sip:" in messages
        assert ua.endpoint.streams.connect_errors == 0
    finally:
        await ua.close()


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_inbound_call_over_tcp(tmp_path):
    calls: asyncio.Queue = asyncio.Queue()

    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept()

    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, timers=Timers(t1=0.25),
                                  resolver=resolve, on_incoming=calls,
                                  streams=StreamOptions(tcp_bind=("127.0.0.1", 0)))
    try:
        tcp_port = ua.endpoint.streams.servers[0].sockets[0].getsockname()[1]
        sipp = await tcp_sipp(tmp_path, "uac", remote=f"127.0.0.1:{tcp_port}", extra=["-s", "+15557770000",
                                                                                      "-d", "1500"])
        leg = await asyncio.wait_for(calls.get(), 20)
        assert leg.local_number == "+15557770000"
        assert await asyncio.wait_for(leg.ended, 20) == "remote_hangup"
        assert await sipp.wait(20) == 0, sipp.explain()
    finally:
        await ua.close()
