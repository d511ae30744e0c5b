"""Phone calls end to end through the real server: `POST /calls/create` type "sip" on a live `talkwire serve`
(uvicorn on a loopback port, its SIP user agent on a free UDP port), sipp as the trunk/callee or the caller,
and the call record read back through `GET /calls/{id}`.

FAKE STT/LLM/TTS where speech recognition is not the point (the FAKE STT still only answers when the VAD heard
sipp's speech end); the OPENAI LLM on `OpenAIFake` where the agent must call a tool (human_transfer,
send_dtmf). Whisper hearing sipp's words is in test_e2e_sip_models.py.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from agent_runtime.providers.base import ToolCallRequest
from agent_runtime.tools.executor import ToolExecutor
from conftest import LiveServer, run_live_server
from control_api.runtime import Runtime
from control_api.settings import Settings
from control_api.storage import Database
from control_api.storage import calls as call_store
from media.wav import read_wav_channels
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
    sipp = await start_sipp(tmp_path, scenario(tmp_path, "stream_then_bye", stream_after(2500) + callee_bye(7000)))
    async with serving(settings, sip_trunk=trunk_uri(sipp)) as api:
        agent_id = await api.agent(welcome_message="Hi there.")
        call_id = await api.dial(agent_id, "+15551230001", name="Jane Caller")
        record, seen = await api.follow(call_id)
        listed = (await api.ok("GET", "/calls", params={"agent_id": agent_id}))["calls"]
        recording = await api.request("GET", f"/calls/{call_id}/recording")
    assert await sipp.wait() == 0, sipp.explain()
    assert recording.status_code == 200 and recording.headers["content-type"] == "audio/wav"
    wav = tmp_path / "recording.wav"
    wav.write_bytes(recording.content)
    channels, rate = read_wav_channels(wav)
    assert rate == 8000 and channels.shape[1] == 2  # the phone leg's rate; caller left, agent right
    assert channels.shape[0] / rate >= 8 and np.abs(channels).max(axis=0).min() > 1000  # both sides spoke
    assert seen[-1] == "completed" and set(seen) <= {"triggered", "in-progress", "completed"}, seen
    assert statuses(record) == [("triggered", "in-progress"), ("in-progress", "completed")]
    assert record["type"] == "sip_call" and record["direction"] == "outbound"
    assert record["phone_to"] == "+15551230001" and record["prospect"]["name"] == "Jane Caller"
    assert record["prospect"]["phone"] == "+15551230001"
    details = record["extra_details"]
    assert details["outcome"] == "remote_hangup" and details["sip_status"] == 200
    assert record["end_reason"] == "remote_hangup"
    assert 9 <= details["duration"] <= 13 and abs(details["duration"] - record["duration"]) < 1
    assert [(c["id"], c["status"], c["type"], c["duration"]) for c in listed] == [
        (call_id, "completed", "sip_call", record["duration"])]
    assert record["answered_at"] and record["ended_at"]
    messages = sipp.messages()
    assert f"Call-ID: {record['provider_call_id']}" in messages
    assert 'From: "Jane Caller" <sip:' in messages
    # The agent greeted, heard the callee's speech (the FAKE STT only runs at the VAD's end of speech) and answered.
    assert "hello there" in user_turns(record)
    agent = [t["text"] for t in record["transcript"] if t["role"] == "agent"]
    assert agent[0] == "Hi there." and "You said: hello there." in agent, record["transcript"]


async def test_busy_callee_fails_the_call_through_the_from_numbers_stored_trunk(settings, tmp_path):
    """`sip_data.from_number` picks the stored number and dials through its trunk (no default trunk here)."""
    sipp = await start_sipp(tmp_path, "uas_busy.xml")
    async with serving(settings) as api:
        agent_id = await api.agent()
        trunk = await api.ok("POST", "/sip-trunks", json={"name": "sipp", "host": "127.0.0.1", "port": sipp.port})
        await api.ok("POST", "/phone-numbers/import",
                     json={"phone_number": "+15550001111", "agent_id": agent_id, "trunk_id": trunk["id"]})
        call_id = await api.dial(agent_id, "+15551230002", from_number="+15550001111")
        record, _ = await api.follow(call_id)
    assert await sipp.wait() == 0, sipp.explain()
    assert record["status"] == "failed" and record["end_reason"] == "busy"
    assert record["extra_details"] == {"worker": "local", "outcome": "busy", "sip_status": 486, "duration": 0}
    assert record["phone_from"] == "+15550001111" and record["duration"] is None
    assert statuses(record) == [("triggered", "failed")]
    messages = sipp.messages()
    assert f"INVITE sip:+15551230002@127.0.0.1:{sipp.port} SIP/2.0" in messages
    assert "<sip:+15550001111@127.0.0.1>" in messages  # From: the stored number, as the trunk's caller ID


async def test_no_answer_is_cancelled_after_the_ring_timeout(settings, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_ring_no_answer.xml")
    async with serving(settings, sip_trunk=trunk_uri(sipp), sip_ring_timeout=60) as api:
        call_id = await api.dial(await api.agent(), "+15551230003", ring_timeout_seconds=1.5)
        record, _ = await api.follow(call_id)
    assert await sipp.wait() == 0, sipp.explain()
    assert record["status"] == "failed"
    assert record["extra_details"] == {"worker": "local", "outcome": "no_answer", "sip_status": 487, "duration": 0}
    assert "CANCEL sip:+15551230003@127.0.0.1" in sipp.messages()


async def test_digest_challenge_answered_with_the_default_trunks_credentials(settings, tmp_path):
    """TALKWIRE_SIP_TRUNK carries the digest credentials; sipp's verifyauth checks them (403 otherwise). The agent
    hangs up after 1.5 s of silence: outcome agent_hangup, the reason kept as end_reason."""
    sipp = await start_sipp(tmp_path, "uas_auth.xml", keys={"qop": 'qop="auth", '})
    async with serving(settings, sip_trunk=trunk_uri(sipp, "alice:secret@")) as api:
        agent_id = await api.agent(welcome_message="Hi.", call_end_duration=1500)
        record, _ = await api.follow(await api.dial(agent_id, "+15551230004"))
    assert await sipp.wait() == 0, sipp.explain()
    assert record["status"] == "completed" and record["end_reason"] == "silence_timeout"
    assert record["extra_details"]["outcome"] == "agent_hangup" and record["extra_details"]["sip_status"] == 200
    assert 'Authorization: Digest username="alice", realm="sipp.test"' in sipp.messages()


def refer_body(sipfrag: str) -> str:
    """Accept our REFER (202), report the transfer by NOTIFY sipfrag; after a 2xx expect our BYE, else hang up."""
    accept = """  <recv request="REFER">
    <action>
      <ereg regexp="sip:([^@>]+)@[^>]+" search_in="hdr" header="Refer-To:" check_it="true"
            assign_to="refer_hdr,refer_user" />
    </action>
  </recv>
  <Reference variables="refer_hdr,refer_user" />
""" + OK_TO_LAST.replace("200 OK", "202 Accepted")
    notify = "Event: refer\nSubscription-State: {state}\nContent-Type: message/sipfrag\n"
    body = accept + REQUEST.format(method="NOTIFY", cseq=2, headers=notify.format(state="active;expires=60"),
                                   content="SIP/2.0 100 Trying")
    body += REQUEST.format(method="NOTIFY", cseq=3, headers=notify.format(state="terminated;reason=noresource"),
                           content=f"SIP/2.0 {sipfrag}")
    if sipfrag.startswith("2"):
        return body + '  <recv request="BYE" />\n' + OK_TO_LAST
    return body + callee_bye(8000)  # time for the agent to say the transfer failed


@pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech")
@pytest.mark.parametrize("sipfrag", ["200 OK", "486 Busy Here"], ids=["transferred", "target-busy"])
async def test_human_transfer_by_refer(settings, tmp_path, sipfrag):
    """The callee asks for a person; the agent (scripted LLM) calls human_transfer, says its words, and the call
    is REFERred to the tool's number. Done: outcome transferred. Refused: the agent is told and says so."""
    make_speech("Can I speak to a person please?", tmp_path)
    sipp = await start_sipp(tmp_path, scenario(tmp_path, "refer", stream_after(2000) + refer_body(sipfrag)))
    async with OpenAIFake() as fake, serving(settings, sip_trunk=trunk_uri(sipp), openai_base_url=fake.base_url,
                                             openai_api_key=fake.api_key) as api:
        agent_id = await api.agent(model={"provider": "OPENAI", "model": fake.models[0]})
        tool = await api.ok("POST", "/tools", json={
            "name": "human_transfer", "ref_code": "human_transfer", "description": "Transfer to a person.",
            "type": "server", "channels": ["voice_telephony"],
            "server": {"url": "https://example.com/h", "method": "POST"},
            "parameters": [{"name": "to_number", "type": "string", "description": "Number", "required": True}]})
        await api.ok("POST", f"/assistant/{agent_id}/tools", json={"tool_id": tool["id"]})
        # A tool action ends the agent's round; the next request is the one that tells it the transfer failed.
        fake.add_tool_calls(("human_transfer", {"to_number": "+14155550100"}), text="Putting you through now.")
        fake.add_text("I am sorry, nobody can take the call right now.")
        record, _ = await api.follow(await api.dial(agent_id, "+15551230005"))
    assert await sipp.wait() == 0, sipp.explain()
    assert f"Refer-To: <sip:+14155550100@127.0.0.1:{sipp.port}>" in sipp.messages()
    actions = [e["data"] for e in record["timeline"] if e["kind"] == "action"]
    assert actions == [{"type": "human_transfer", "to_number": "+14155550100"}]
    agent_said = [t["text"] for t in record["transcript"] if t["role"] == "agent"]
    assert "Putting you through now." in agent_said
    if sipfrag.startswith("2"):
        assert record["status"] == "completed" and record["extra_details"]["outcome"] == "transferred"
        assert record["end_reason"] == "transferred"
        return
    assert record["extra_details"]["outcome"] == "remote_hangup"
    failed = [e["data"] for e in record["timeline"] if e["kind"] == "action_failed"]
    assert len(failed) == 1 and "486" in failed[0]["message"]
    # The agent was told at once and answered from it, while the caller was still on the line.
    told = [m for r in fake.chat_requests for m in r.body["messages"] if "did not go through" in str(m.get("content"))]
    assert told and told[0]["role"] == "system"
    assert "I am sorry, nobody can take the call right now." in agent_said


def dtmf_body() -> str:
    """The callee presses 4 and 2 (SIP INFO; no telephone-event offered), then expects the agent's keys 9 and #
    by INFO, then hangs up."""
    info = "Content-Type: application/dtmf-relay\n"
    body = '  <pause milliseconds="2500" />\n'
    body += REQUEST.format(method="INFO", cseq=2, headers=info, content="Signal=4\nDuration=160")
    body += REQUEST.format(method="INFO", cseq=3, headers=info, content="Signal=2\nDuration=160")
    for n, digit in enumerate(("9", "#"), 1):
        body += f"""  <recv request="INFO">
    <action>
      <ereg regexp="Signal= *{digit}" search_in="body" check_it="true" assign_to="key{n}" />
    </action>
  </recv>
  <Reference variables="key{n}" />
""" + OK_TO_LAST
    return body + callee_bye(1000)


async def test_keypad_both_ways(settings, tmp_path):
    """Keys the callee presses reach the agent as one turn of text; the agent's send_dtmf tool presses keys."""
    sipp = await start_sipp(tmp_path, scenario(tmp_path, "dtmf", dtmf_body(), payloads="0", extra_sdp=""))
    async with OpenAIFake() as fake, serving(settings, sip_trunk=trunk_uri(sipp), openai_base_url=fake.base_url,
                                             openai_api_key=fake.api_key) as api:
        agent_id = await api.agent(model={"provider": "OPENAI", "model": fake.models[0]})
        fake.add_tool_calls(("send_dtmf", {"digits": "9#"}))
        fake.add_text("I pressed nine and hash.")
        record, _ = await api.follow(await api.dial(agent_id, "+15551230006"))
    assert await sipp.wait() == 0, sipp.explain()
    assert "The caller pressed 4 2." in user_turns(record)
    first = fake.chat_requests[0].body
    assert {"role": "user", "content": "The caller pressed 4 2."} in first["messages"]
    assert "send_dtmf" in {t["function"]["name"] for t in first["tools"]}
    results = [e["data"] for e in record["timeline"] if e["kind"] == "tool" and e["data"].get("name") == "send_dtmf"]
    assert [r["event"] for r in results] == ["tool_call", "tool_result"]
    assert record["status"] == "completed" and record["extra_details"]["outcome"] == "remote_hangup"


# ---- inbound ----------------------------------------------------------------------------------------------

async def test_inbound_calls_to_our_numbers(settings, tmp_path):
    """sipp calls an imported number: its agent answers with the inbound welcome. An unknown number gets 404,
    the number of an inactive agent 480."""
    async with serving(settings) as api:
        agent_id = await api.agent(welcome_message="Outbound hello.",
                                   inbound_welcome_message="Acme support, how can I help?")
        sleeping = await api.agent(name="Off duty")
        trunk = {"host": "127.0.0.1", "port": 5060}
        await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557770000", "agent_id": agent_id,
                                                            "trunk": trunk})
        await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557770001", "agent_id": sleeping,
                                                            "use_existing_credentials": True})
        await api.ok("PATCH", f"/assistant/{sleeping}", json={"active": False})
        remote = f"127.0.0.1:{api.sip_port}"
        assert api.server.app.state.runtime.banner_info()["sip"] == remote  # what `talkwire serve` prints
        caller = await start_sipp(tmp_path, "uac", remote=remote, extra=["-s", "+15557770000", "-d", "6000"])
        assert await caller.wait() == 0, caller.explain()
        for number, status in (("+15550000000", 404), ("+15557770001", 480)):
            workdir = tmp_path / number
            workdir.mkdir()
            rejected = await start_sipp(workdir, "uac_rejected.xml", remote=remote, extra=["-s", number])
            assert await rejected.wait() == 0, rejected.explain()
            assert f"SIP/2.0 {status} " in rejected.messages()
        calls = (await api.ok("GET", "/calls"))["calls"]
        assert len(calls) == 1, calls  # refused calls leave no record
        record, _ = await api.follow(calls[0]["id"])
    assert record["agent_id"] == agent_id and record["direction"] == "inbound" and record["type"] == "sip_call"
    assert record["phone_to"] == "+15557770000" and record["phone_from"] == "sipp"
    assert record["status"] == "completed" and record["extra_details"]["outcome"] == "remote_hangup"
    assert f"Call-ID: {record['provider_call_id']}" in caller.messages()
    assert statuses(record) == [("in-progress", "completed")]
    agent_said = [t["text"] for t in record["transcript"] if t["role"] == "agent"]
    assert agent_said[:1] == ["Acme support, how can I help?"], record["timeline"]


async def test_a_forwarded_call_routes_on_its_diversion_and_the_agent_sees_the_x_headers(settings, tmp_path):
    """The To user is no number of ours; the second Diversion header names one: its agent answers. The INVITE's
    X- headers are on the record and in the live conversation's context, marked as data."""
    async with serving(settings) as api:
        agent_id = await api.agent(inbound_welcome_message="Forwarded line, hello.")
        await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557772222", "agent_id": agent_id,
                                                            "trunk": {"host": "127.0.0.1", "port": 5060}})
        remote = f"127.0.0.1:{api.sip_port}"
        caller = await start_sipp(tmp_path, "uac_diverted.xml", remote=remote,
                                  keys={"diverted": "15557772222"}, extra=["-s", "+15559990000"])
        calls: list[dict[str, Any]] = []
        while not calls:  # the call is live for 4 s: read what its conversation was given
            await asyncio.sleep(0.1)
            calls = (await api.ok("GET", "/calls"))["calls"]
        live = None
        while live is None:
            await asyncio.sleep(0.05)
            live = api.server.app.state.runtime.calls.get(calls[0]["id"])
        context = live.conversation.pending_context + list(live.conversation.history.items)
        assert await caller.wait() == 0, caller.explain()
        record, _ = await api.follow(calls[0]["id"])
    assert record["agent_id"] == agent_id and record["phone_to"] == "+15557772222"
    assert record["extra_details"]["diverted_from"] == "15557772222"
    assert record["extra_details"]["sip_headers"] == {"X-Customer-Id": "C-4711", "X-Queue": "billing"}
    assert record["status"] == "completed", record
    told = [m["content"] for m in context if m.get("role") == "system" and "X-Customer-Id: C-4711" in m["content"]]
    assert len(told) == 1 and "forwarded from 15557772222" in told[0] and "X-Queue: billing" in told[0]


# ---- the user agent's life with the server ----------------------------------------------------------------

async def test_shutdown_cancels_a_ringing_call_and_fails_its_record(settings, tmp_path):
    sipp = await start_sipp(tmp_path, "uas_ring_no_answer.xml")
    async with serving(settings, sip_trunk=trunk_uri(sipp)) as api:
        call_id = await api.dial(await api.agent(), "+15551230007", ring_timeout_seconds=60)
        for _ in range(200):
            if "SIP/2.0 180 Ringing" in sipp.messages():
                break
            await asyncio.sleep(0.05)
        assert (await api.ok("GET", f"/calls/{call_id}"))["status"] == "triggered"
    assert await sipp.wait() == 0, sipp.explain()  # it got our CANCEL
    db = await Database.open(settings.effective_database_url)
    try:
        call = await call_store.get_call(db, call_id)
    finally:
        await db.close()
    assert call.status == "failed" and call.extra_details["outcome"] == "agent_hangup"
    assert call.extra_details["sip_status"] == 487


async def test_sip_off_and_a_taken_sip_address(settings):
    async with serving(settings, sip_bind="off") as api:
        runtime = api.server.app.state.runtime
        assert runtime.sip is None and runtime.banner_info()["sip"] is None and "SIP (UDP):        off" in runtime.banner()
        agent_id = await api.agent()
        response = await api.request("POST", "/calls/create",
                                     json={"agent_id": agent_id, "type": "sip", "sip_data": {"to": "+15551230008"}})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "UPSTREAM_SERVICE_TIMEOUT"
        assert "TALKWIRE_SIP_BIND=off" in response.json()["error"]["message"]
        assert (await api.ok("GET", "/calls"))["calls"] == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = settings.model_copy(update={"sip_bind": f"127.0.0.1:{taken.getsockname()[1]}"})
        with pytest.raises(OSError, match="TALKWIRE_SIP_BIND"):
            async with Runtime.open(busy):
                pass


# ---- the send_dtmf tool itself -------------------------------------------------------------------------------

async def test_send_dtmf_tool_checks_its_digits_and_exists_only_with_a_keypad():
    pressed: list[str] = []

    async def keypad(digits: str) -> None:  # test double of SipLeg.send_dtmf
        pressed.append(digits)

    phone = ToolExecutor([], channel="voice_sip", send_event=_no_events, send_dtmf=keypad)
    web = ToolExecutor([], channel="voice_web", send_event=_no_events)
    try:
        assert "send_dtmf" in {d["function"]["name"] for d in phone.definitions()}
        assert "send_dtmf" not in {d["function"]["name"] for d in web.definitions()}
        ok = await phone.execute(ToolCallRequest("t1", "send_dtmf", {"digits": "1 2, 3#"}))
        assert not ok.is_error and ok.result == {"status": "sent", "digits": "123#"} and pressed == ["123#"]
        for bad in ("", "12x", "1" * 65):
            outcome = await phone.execute(ToolCallRequest("t2", "send_dtmf", {"digits": bad}))
            assert outcome.is_error and "digits" in outcome.result["error"]
        assert pressed == ["123#"]
        assert (await web.execute(ToolCallRequest("t3", "send_dtmf", {"digits": "1"}))).is_error
    finally:
        await phone.aclose()
        await web.aclose()


async def _no_events(message: dict) -> None:
    """Phone legs have no data channel (test double of Leg.send_event)."""
