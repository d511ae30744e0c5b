"""Phone calls end to end through the real server: `POST /calls/create` type "sip" on a live `talkwire serve`
(uvicorn on a loopback port, its SIP user agent on a free UDP port), sipp as the trunk/callee or the caller,
and the call record read back through `GET /calls/{id}`.

FAKE STT/LLM/TTS where speech recognition is not the point (the FAKE STT still only answers when the VAD heard
sipp's speech end); the OPENAI LLM on `OpenAIFake` where the agent must call a tool (human_transfer,
send_dtmf). Whisper hearing sipp's words is in test_e2e_sip_models.py.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LiveServer, run_live_server
from control_api.settings import Settings
from openai_fake import OpenAIFake
from sipp.harness import HAVE_SPEECH_TOOLS, SIPP, Sipp, make_speech, start_sipp

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
]

FAKE_STACK = {
    "model": {"provider": "FAKE", "model": "echo"},
    "transcription": {"provider": "FAKE", "model": "scripted"},
    "voice": {"provider": "FAKE", "name": "tone"},
}
FINAL = ("completed", "failed")

# sipp scenarios of these tests (written next to the call's other files). Placeholders {…} are filled by
# `scenario()`. In-dialog requests from the callee go to our Contact with our From as their To.
ANSWER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from" />
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact" />
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {payloads}
a=rtpmap:0 PCMU/8000
{extra_sdp}
    ]]>
  </send>
  <recv request="ACK">
    <action>
      {on_ack}
    </action>
  </recv>
{body}
</scenario>
"""

STREAM = '<exec rtp_stream="speech.ulaw,1,0" />'


def stream_after(ms: int) -> str:
    """The callee starts talking (speech.ulaw) `ms` after the answer: the agent's welcome plays first."""
    return f'  <pause milliseconds="{ms}" />\n  <nop>\n    <action>\n      {STREAM}\n    </action>\n  </nop>\n'

# The callee's own in-dialog request; `{method}`, `{cseq}`, `{headers}` and `{content}` are filled in.
REQUEST = """  <send retrans="500">
    <![CDATA[
{method} [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:callee@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
To:[$remote_from]
[last_Call-ID:]
CSeq: {cseq} {method}
Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{headers}Content-Length: [len]

{content}
    ]]>
  </send>
  <recv response="200" />
"""

OK_TO_LAST = """  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
"""

# Callee hangs up: BYE after `ms` milliseconds.
def callee_bye(ms: int) -> str:
    return f'  <pause milliseconds="{ms}" />\n' + REQUEST.format(method="BYE", cseq=9, headers="", content="")


def scenario(workdir: Path, name: str, body: str, *, on_ack: str = "", payloads: str = "0 101",
             extra_sdp: str = "a=rtpmap:101 telephone-event/8000\n") -> str:
    path = workdir / f"{name}.xml"
    path.write_text(ANSWER.format(name=name, payloads=payloads, extra_sdp=extra_sdp, on_ack=on_ack, body=body))
    return str(path)


# ---- the server and its API ---------------------------------------------------------------------------

@dataclass
class Api:
    server: LiveServer

    @property
    def sip_port(self) -> int:
        return self.server.app.state.runtime.sip.local_address[1]

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=20) as http:
            return await http.request(method, path, headers={"X-API-Key": self.server.secret_key}, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def agent(self, **fields: Any) -> str:
        body = {"name": "Phone agent", "welcome_message": "Hello, this is Talkwire.",
                "agent_prompt": "You answer the phone.", **FAKE_STACK,
                "call_end_duration": 0, "call_user_alert_duration": 0, **fields}
        return (await self.ok("POST", "/assistant", json=body))["id"]

    async def dial(self, agent_id: str, to: str, **sip_data: Any) -> str:
        created = await self.ok("POST", "/calls/create",
                                json={"agent_id": agent_id, "type": "sip", "sip_data": {"to": to, **sip_data}})
        assert created["status"] == "triggered" and created["worker_url"] is None, created
        return created["call_id"]

    async def follow(self, call_id: str, timeout: float = 45) -> tuple[dict[str, Any], list[str]]:
        """Poll the record until it is final; returns it and every status seen on the way, in order."""
        seen: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self.ok("GET", f"/calls/{call_id}")
            if not seen or seen[-1] != record["status"]:
                seen.append(record["status"])
            if record["status"] in FINAL:
                return record, seen
            assert loop.time() < deadline, f"call {call_id} is still {record['status']}"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[Api]:
    """A live server started off this loop (sipp and OpenAIFake are served by this loop meanwhile)."""
    manager = run_live_server(settings.model_copy(update=overrides), startup_timeout=120)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield Api(server)
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def trunk_uri(sipp: Sipp, credentials: str = "") -> str:
    return f"sip:{credentials}127.0.0.1:{sipp.port};transport=udp"


def statuses(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The record's status transitions, from its timeline."""
    return [(e["data"]["from"], e["data"]["to"]) for e in record["timeline"] if e["kind"] == "status"]


def user_turns(record: dict[str, Any]) -> list[str]:
    return [t["text"] for t in record["transcript"] if t["role"] == "user"]


# ---- outbound ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
async def test_answered_call_hears_the_callee_and_completes_when_they_hang_up(settings, tmp_path):
    make_speech("Hello, I would like to check the status of my order please.", tmp_path)
    sipp = await start_sipp(tmp_path, scenario(tmp_path, "stream_then_bye", stream_after(2500) + callee_bye(5000)))
    async with serving(settings, sip_trunk=trunk_uri(sipp)) as api:
        agent_id = await api.agent(transcription={"provider": "FAKE", "model": "scripted"})
        call_id = await api.dial(agent_id, "+15551230001", name="Jane Caller")
        record, seen = await api.follow(call_id)
        listed = (await api.ok("GET", "/calls", params={"agent_id": agent_id}))["calls"]
    assert await sipp.wait() == 0, sipp.explain()
    assert seen[-1] == "completed" and set(seen) <= {"triggered", "in-progress", "completed"}, seen
    assert statuses(record) == [("triggered", "in-progress"), ("in-progress", "completed")]
    assert record["type"] == "sip_call" and record["direction"] == "outbound"
    assert record["phone_to"] == "+15551230001" and record["prospect"]["name"] == "Jane Caller"
    assert record["prospect"]["phone"] == "+15551230001"
    details = record["extra_details"]
    assert details["outcome"] == "remote_hangup" and details["sip_status"] == 200
    assert record["end_reason"] == "remote_hangup"
    assert 7 <= details["duration"] <= 11 and abs(details["duration"] - record["duration"]) < 1
    assert [(c["id"], c["status"], c["type"], c["duration"]) for c in listed] == [
        (call_id, "completed", "sip_call", record["duration"])]
    assert record["answered_at"] and record["ended_at"]
    messages = sipp.messages()
    assert f"Call-ID: {record['provider_call_id']}" in messages
    assert 'From: "Jane Caller" <sip:' in messages
    # The agent greeted, heard the callee's speech (the FAKE STT only runs at the VAD's end of speech) and answered.
    assert "hello there" in user_turns(record)
    agent = [t["text"] for t in record["transcript"] if t["role"] == "agent"]
    assert agent[0] == "Hello, this is Talkwire." and "You said: hello there." in agent, record["transcript"]
