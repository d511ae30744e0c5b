"""The shipped Kamailio config (deploy/kamailio/kamailio.cfg) in front of two real members: sipp's calls in
through Kamailio reach both members; with one member stopped, every call reaches the other.

Each member is a live `talkwire serve` (its own SQLite, the same number and agent imported into each, FAKE
providers); Kamailio runs in the foreground on a free loopback port with the member list written by the test.
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, make_keys, run_live_server
from control_api.settings import Settings
from sipp.harness import SIPP, free_udp_port, port_in_use, start_sipp

KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)
CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "kamailio" / "kamailio.cfg"
NUMBER = "+15557770000"
FAKE_STACK = {
    "model": {"provider": "FAKE", "model": "echo"},
    "transcription": {"provider": "FAKE", "model": "scripted"},
    "voice": {"provider": "FAKE", "name": "tone"},
}

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
    pytest.mark.skipif(KAMAILIO is None, reason="kamailio (Debian kamailio) is not installed"),
]


class Member:
    def __init__(self, server: LiveServer) -> None:
        self.server = server

    @property
    def sip_port(self) -> int:
        return self.server.app.state.runtime.sip.local_address[1]

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=20) as http:
            response = await http.request(method, path, headers={"X-API-Key": self.server.secret_key}, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def answer_number(self) -> None:
        agent = await self.ok("POST", "/assistant", json={
            "name": "Phone agent", "welcome_message": "Hello.", "agent_prompt": "You answer the phone.",
            "call_end_duration": 0, "call_user_alert_duration": 0, **FAKE_STACK})
        await self.ok("POST", "/phone-numbers/import", json={"phone_number": NUMBER, "agent_id": agent["id"],
                                                             "trunk": {"host": "127.0.0.1", "port": 5060}})

    async def inbound_calls(self) -> int:
        return len((await self.ok("GET", "/calls"))["calls"])

    async def outcomes(self, timeout: float = 20.0) -> list[str]:
        """Once every call here has ended: each one's end reason (the caller's BYE, relayed by Kamailio along
        the route set, ends it as `remote_hangup`)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            calls = (await self.ok("GET", "/calls"))["calls"]
            if all(call["status"] in ("completed", "failed") for call in calls):
                return [(await self.ok("GET", f"/calls/{call['id']}"))["end_reason"] for call in calls]
            assert asyncio.get_running_loop().time() < deadline, calls
            await asyncio.sleep(0.1)


@asynccontextmanager
async def member(base: Path, template: Path) -> AsyncIterator[Member]:
    data_dir = base / "data"
    data_dir.mkdir(parents=True)
    shutil.copyfile(template, data_dir / "talkwire.db")
    secret, publishable = make_keys()
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=8080, secret_key=secret,
                        publishable_key=publishable, providers="fake", sip_bind="127.0.0.1:0")
    manager = run_live_server(settings, startup_timeout=120)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield Member(server)
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@asynccontextmanager
async def kamailio(workdir: Path, member_ports: list[int], ping_interval: int = 1) -> AsyncIterator[int]:
    """Kamailio with the shipped config on a free loopback port, the members as dispatcher set 1."""
    members = workdir / "members.list"
    members.write_text("".join(f"1 sip:127.0.0.1:{port} 0 0 duid=m{i}\n" for i, port in enumerate(member_ports)))
    port = free_udp_port()
    log = (workdir / "kamailio.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(KAMAILIO), "-f", str(CONFIG), "-DD", "-E", "-n", "2", "-l", f"udp:127.0.0.1:{port}",
        "-P", str(workdir / "kamailio.pid"), "-Y", str(workdir), "-w", str(workdir),
        "-A", f'DISPATCHER_LIST="{members}"', "-A", f"PING_INTERVAL={ping_interval}", "-A", "MEMBER_TIMEOUT=1000",
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if port_in_use(port) or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.returncode is None, (workdir / "kamailio.log").read_text()
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


# A caller that follows the route set (sipp's built-in uac sends its ACK and BYE straight to the proxy with no
# Route header, which no record-routing proxy can place in a dialog).
ROUTED_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uac through a record-routing proxy">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="183" optional="true" />
  <recv response="200" rtd="true" rrs="true" />
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300" />
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" />
</scenario>
"""


async def call_through(workdir: Path, kamailio_port: int, calls: int) -> str:
    """`calls` sipp calls (each 300 ms long) to NUMBER through Kamailio, ACK and BYE along the route set;
    sipp's output. Fails unless all succeed."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "uac_routed.xml").write_text(ROUTED_UAC)
    args = [str(SIPP), "-sf", "uac_routed.xml", "-s", NUMBER, "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mi", "127.0.0.1", "-mp", str(free_udp_port(pair=True)), "-m", str(calls), "-l", "2", "-r", "4",
            "-d", "300", "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-trace_msg",
            f"127.0.0.1:{kamailio_port}"]
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        traces = "\n".join(p.read_text(errors="replace")[-4000:] for p in workdir.glob("*_errors.log"))
        raise AssertionError(f"sipp exit {proc.returncode}\n{text[-3000:]}\n{traces}")
    return text


async def test_kamailio_spreads_calls_over_members_and_routes_around_a_stopped_one(
        tmp_path: Path, migrated_sqlite_template: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(member(tmp_path / "a", migrated_sqlite_template))
        b_stack = AsyncExitStack()
        b = await b_stack.enter_async_context(member(tmp_path / "b", migrated_sqlite_template))
        stack.push_async_callback(b_stack.aclose)
        for m in (a, b):
            await m.answer_number()
        port = await stack.enter_async_context(kamailio(tmp_path, [a.sip_port, b.sip_port]))

        await call_through(tmp_path / "both", port, 6)
        spread = (await a.inbound_calls(), await b.inbound_calls())
        assert spread == (3, 3), f"calls per member {spread}; kamailio log:\n" + (
            tmp_path / "kamailio.log").read_text()[-3000:]

        assert await b.outcomes() == ["remote_hangup"] * 3

        await b_stack.aclose()  # member b stops: its SIP address goes silent
        await call_through(tmp_path / "one", port, 6)
        assert await a.inbound_calls() == 3 + 6
        assert await a.outcomes() == ["remote_hangup"] * 9


FULL_MEMBER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a member that is full: 503 to every INVITE">
  <recv request="INVITE" />
  <send>
    <![CDATA[
SIP/2.0 503 Service Unavailable
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Retry-After: 2
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"""


async def test_a_call_refused_by_a_full_member_goes_to_the_next(tmp_path: Path,
                                                                 migrated_sqlite_template: Path) -> None:
    """A member that answers 503 (full, draining, cut off from Redis) stays in the rotation (it is alive) but each
    call it refuses is tried on the next member, so the caller never hears the refusal."""
    full_dir = tmp_path / "full"
    full_dir.mkdir()
    (full_dir / "full.xml").write_text(FULL_MEMBER)
    full = await start_sipp(full_dir, str(full_dir / "full.xml"), extra=["-m", "100"])
    try:
        async with member(tmp_path / "a", migrated_sqlite_template) as a:
            await a.answer_number()
            # No OPTIONS probes during the test (the stand-in only speaks INVITE): routing alone is under test.
            async with kamailio(tmp_path, [full.port, a.sip_port], ping_interval=3600) as port:
                await call_through(tmp_path / "calls", port, 4)
            assert await a.inbound_calls() == 4
        tried_next = (tmp_path / "kamailio.log").read_text(errors="replace").count("member failed for")
        assert tried_next == 2  # round-robin sent every other call to the full member first
    finally:
        if full.proc.returncode is None:
            full.proc.kill()
            await full.proc.wait()
