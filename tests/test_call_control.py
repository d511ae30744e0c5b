"""Call control against the real server: ending a live call from the API, calls a dead process left open, web calls
never connected, inactive and deleted agents, and the recording of a server run with a relative data directory.

FAKE providers; an aiortc caller for web calls, sipp as the callee for phone calls, `talkwire serve` as a child
process where it is killed.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soxr
from conftest import LiveServer, run_live_server
from sipp.harness import SIPP, start_sipp
from webrtc_caller import WebRtcCaller

from agent_runtime.providers.fake import FakeTTS
from control_api.settings import Settings
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.agents import create_agent
from control_api.storage.clients import ensure_default_client
from loadtest.server import create_agent as create_fake_agent


@asynccontextmanager
async def serving(settings: Settings, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A live server started off this loop (callers and sipp run on this loop meanwhile)."""
    manager = run_live_server(settings.model_copy(update=overrides), startup_timeout=120)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def http(server: LiveServer, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=20,
                             headers={"X-API-Key": key or server.secret_key})


async def record(server: LiveServer, call_id: str) -> dict[str, Any]:
    async with http(server) as api:
        response = await api.get(f"/calls/{call_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def until(server: LiveServer, call_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await record(server, call_id)
        if found["status"] == status:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"call {call_id} is still {found['status']}"
        await asyncio.sleep(0.1)


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# ---- POST /calls/{id}/end --------------------------------------------------------------------------------

async def test_end_a_live_web_call_from_the_api(live_server: LiveServer) -> None:
    agent_id = await create_fake_agent(live_server.base_url, live_server.secret_key)
    caller = WebRtcCaller()
    try:
        created = await caller.call(live_server.base_url, agent_id, live_server.publishable_key)
        call_id = created["call_id"]
        await caller.wait_for_audio(seconds=0.3, timeout=30)  # the welcome: the call is live
        async with http(live_server, live_server.publishable_key) as public:
            assert (await public.post(f"/calls/{call_id}/end")).status_code == 403  # secret key only
        async with http(live_server) as api:
            ended = await api.post(f"/calls/{call_id}/end")
            assert ended.status_code == 200, ended.text
            body = ended.json()
            assert (body["status"], body["end_reason"], body["success"]) == ("completed", "api_hangup", True)
            again = await api.post(f"/calls/{call_id}/end")
            assert again.status_code == 409 and error_code(again) == "CALL_NOT_LIVE"
            unknown = await api.post("/calls/00000000-0000-4000-8000-000000000000/end")
            assert unknown.status_code == 404 and error_code(unknown) == "CALL_NOT_FOUND"
            document = (await api.get("/openapi.json")).json()
            assert "409" in document["paths"]["/calls/{id}/end"]["post"]["responses"]
    finally:
        await caller.close()
    found = await record(live_server, call_id)
    assert found["end_reason"] == "api_hangup" and found["timeline"][-1]["data"]["reason"] == "api_hangup"


async def test_a_created_web_call_not_yet_connected_is_not_live(live_server: LiveServer) -> None:
    agent_id = await create_fake_agent(live_server.base_url, live_server.secret_key)
    async with http(live_server) as api:
        call_id = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()["call_id"]
        response = await api.post(f"/calls/{call_id}/end")
    assert response.status_code == 409 and error_code(response) == "CALL_NOT_LIVE"


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
@pytest.mark.parametrize("scenario,status", [("uas_answer.xml", "completed"), ("uas_ring_no_answer.xml", "failed")])
async def test_end_a_phone_call_answered_or_ringing(settings: Settings, tmp_path: Path, scenario: str,
                                                    status: str) -> None:
    sipp = await start_sipp(tmp_path, scenario)
    async with serving(settings, sip_trunk=f"sip:127.0.0.1:{sipp.port};transport=udp") as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            created = await api.post("/calls/create", json={"agent_id": agent_id, "type": "sip",
                                                            "sip_data": {"to": "+15551230100"}})
            call_id = created.json()["call_id"]
            wanted = "in-progress" if status == "completed" else "triggered"
            for _ in range(200):
                if (await record(server, call_id))["status"] == wanted and "180 Ringing" in sipp.messages():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            ended = await api.post(f"/calls/{call_id}/end")
        assert ended.status_code == 200, ended.text
        found = await until(server, call_id, status)
    assert await sipp.wait() == 0, sipp.explain()  # it got our BYE, or our CANCEL
    assert found["end_reason"] == "api_hangup"


# ---- calls nobody will finish -------------------------------------------------------------------------------

async def test_calls_left_open_by_a_dead_process_are_closed_on_start(settings: Settings) -> None:
    db = await Database.open(settings.effective_database_url)
    try:
        client = await ensure_default_client(db, secret_key=settings.secret_key,
                                             publishable_key=settings.publishable_key)
        agent = await create_agent(db, client.client_id, {"name": "Left", "welcome_message": "Hi",
                                                          "agent_prompt": "x"})

        async def open_call(worker: str | None, *, connected: bool = True, kind: str = "web_call") -> str:
            call = await call_store.create_call(db, client_id=client.client_id, agent_id=agent.id, type=kind,
                                                direction="inbound", status="in-progress", worker=worker)
            if connected:
                await call_store.mark_running(db, call.id, recording=f"recordings/{call.id}.wav",
                                              worker=worker or "local")
                if worker is None:  # a record from before workers were named
                    await call_store.update_call(db, call.id, extra_details={})
                await call_store.add_transcript_turn(db, client.client_id, call.id, "user", "Hello there")
            return call.id

        mine, unnamed = await open_call("local"), await open_call(None)
        phone = await open_call("local", kind="sip_call")
        others = await open_call("member-b")  # another member of a deployment runs it: not ours to close
        waiting = await open_call("local", connected=False)  # its browser may still connect
    finally:
        await db.close()
    async with serving(settings) as server:
        for call_id in (mine, unnamed, phone):
            found = await record(server, call_id)
            assert (found["status"], found["end_reason"]) == ("failed", "worker_lost"), found
            assert [t["text"] for t in found["transcript"]] == ["Hello there"]  # kept
            assert found["recording_url"] is not None
        for call_id in (others, waiting):
            assert (await record(server, call_id))["status"] == "in-progress"


async def test_a_web_call_never_connected_fails_on_its_own(settings: Settings) -> None:
    async with serving(settings, web_connect_timeout=1.0) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            created = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()
        found = await until(server, created["call_id"], "failed", timeout=10)
        assert found["end_reason"] == "not_connected"
        caller = WebRtcCaller()
        try:
            async with httpx.AsyncClient(timeout=10) as plain:
                late = await plain.post(created["worker_url"], json={"sdp": await caller.create_offer(),
                                                                      "type": "offer"})
        finally:
            await caller.close()
        assert late.status_code == 410 and error_code(late) == "CALL_ENDED"


# ---- agents that take no calls ------------------------------------------------------------------------------

async def test_an_inactive_agent_takes_no_call(settings: Settings) -> None:
    async with serving(settings, sip_trunk="sip:127.0.0.1:9;transport=udp") as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            earlier = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()
            assert (await api.patch(f"/assistant/{agent_id}", json={"active": False})).status_code == 200
            for body in ({"type": "web"}, {"type": "sip", "sip_data": {"to": "+15551230101"}}):
                refused = await api.post("/calls/create", json={"agent_id": agent_id, **body})
                assert refused.status_code == 404 and error_code(refused) == "AGENT_NOT_FOUND", refused.text
                assert "inactive" in refused.json()["error"]["message"]
            assert (await api.get("/calls")).json()["total"] == 1  # nothing was stored, nothing dialed
        caller = WebRtcCaller()
        try:
            async with httpx.AsyncClient(timeout=10) as plain:
                offer = await plain.post(earlier["worker_url"], json={"sdp": await caller.create_offer(),
                                                                      "type": "offer"})
        finally:
            await caller.close()
        assert offer.status_code == 404 and error_code(offer) == "AGENT_NOT_FOUND"


async def test_a_deleted_agents_calls_stay_readable(settings: Settings) -> None:
    async with serving(settings) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            call_id = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()["call_id"]
            assert (await api.delete(f"/assistant/{agent_id}")).status_code == 200
            assert agent_id not in [a["id"] for a in (await api.get("/assistant")).json()["agents"]]
            assert (await api.get(f"/assistant/{agent_id}")).status_code == 404
            refused = await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})
            assert refused.status_code == 404 and error_code(refused) == "AGENT_NOT_FOUND"
            listed = (await api.get("/calls", params={"agent_id": agent_id})).json()
            assert [c["id"] for c in listed["calls"]] == [call_id] and listed["calls"][0]["agent"]["id"] == agent_id
            detail = await api.get(f"/calls/{call_id}")
            assert detail.status_code == 200 and detail.json()["agent"]["id"] == agent_id


# ---- the recording ------------------------------------------------------------------------------------------

@pytest.fixture
def relative_data_dir(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`rel-data`, relative to the working directory (tmp_path), holding the test's migrated database."""
    monkeypatch.chdir(tmp_path)
    relative = Path("rel-data")
    relative.mkdir()
    shutil.copyfile(settings.data_dir / "talkwire.db", relative / "talkwire.db")
    return relative


async def test_recording_download_with_a_relative_data_dir(settings: Settings, tmp_path: Path,
                                                           relative_data_dir: Path) -> None:
    async with serving(settings, data_dir=relative_data_dir) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        caller = WebRtcCaller()
        try:
            call_id = (await caller.call(server.base_url, agent_id, server.publishable_key))["call_id"]
            await caller.wait_for_audio(seconds=0.5, timeout=30)
        finally:
            await caller.close()
        await until(server, call_id, "completed")
        async with http(server) as api:
            response = await api.get(f"/calls/{call_id}/recording")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    path = tmp_path / "heard.wav"
    path.write_bytes(response.content)
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 2 and wav.getnframes() > 0


# ---- a process killed mid-call ------------------------------------------------------------------------------

@asynccontextmanager
async def server_process(settings: Settings) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`talkwire serve` as a child process on `settings.data_dir` (FAKE providers); its base URL and process."""
    env = {**os.environ, "TALKWIRE_SECRET_KEY": settings.secret_key,
           "TALKWIRE_PUBLISHABLE_KEY": settings.publishable_key,
           "TALKWIRE_ICE_HOST_ADDRESSES": "127.0.0.1", "TALKWIRE_SIP_BIND": "127.0.0.1:0"}
    env.pop("TALKWIRE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_api.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--providers",
        "fake", "--data-dir", str(settings.data_dir), "--json", "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    try:
        banner = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        yield banner["url"].rstrip("/"), proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_call_of_a_killed_server_is_worker_lost_with_what_it_recorded(settings: Settings) -> None:
    speech = FakeTTS().render("hello, can you hear me today")  # voiced enough for the VAD
    async with server_process(settings) as (base, proc):
        agent_id = await create_fake_agent(base, settings.secret_key)
        caller = WebRtcCaller()
        try:
            call_id = (await caller.call(base, agent_id, settings.publishable_key))["call_id"]
            await caller.wait_for_message(lambda m: m.get("type") == "agent_state" and m["state"] == "listening",
                                          timeout=30)
            caller.mic.play(np.concatenate([soxr.resample(speech, 16000, 48000).astype(np.int16),
                                            np.zeros(48000, np.int16)]))
            await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("role") == "agent"
                                          and m.get("is_final") and "said" in m.get("text", "").lower(), timeout=30)
            await asyncio.sleep(0.5)  # the turn reaches the database
            proc.send_signal(signal.SIGKILL)  # no shutdown: the record stays in-progress
            await proc.wait()
        finally:
            await caller.close()
    async with server_process(settings) as (base, _), httpx.AsyncClient(
            base_url=base, timeout=20, headers={"X-API-Key": settings.secret_key}) as api:
        found = (await api.get(f"/calls/{call_id}")).json()
        recording = await api.get(f"/calls/{call_id}/recording")
    assert (found["status"], found["end_reason"]) == ("failed", "worker_lost"), found
    turns = [(t["role"], t["text"]) for t in found["transcript"]]
    assert ("user", "hello there") in turns and len(turns) >= 3, turns  # the welcome, the caller, the answer
    assert recording.status_code == 200 and len(recording.content) > 44  # the recording so far
