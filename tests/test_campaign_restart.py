"""A campaign survives `kill -9` of its server: `talkwire serve` as a child process dialling a sipp trunk is
killed while a campaign call rings; the restarted server records that attempt as lost (`worker_lost`), retries it
by the failed-call rules and dials nobody else twice."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from campaign_sipp import ANSWER, LATE, CampaignTrunk, campaign_body
from sipp.harness import SIPP

from control_api.settings import Settings

pytestmark = [
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
    pytest.mark.timeout(180),
]
FAKE_STACK = {
    "model": {"provider": "FAKE", "model": "echo"},
    "transcription": {"provider": "FAKE", "model": "scripted"},
    "voice": {"provider": "FAKE", "name": "tone"},
}


@asynccontextmanager
async def server_process(settings: Settings, trunk: CampaignTrunk) -> AsyncIterator[
        tuple[httpx.AsyncClient, asyncio.subprocess.Process]]:
    """`talkwire serve` on `settings.data_dir` (SQLite, FAKE providers, the default trunk on sipp); an API client
    on it and the process."""
    env = {**os.environ, "TALKWIRE_SECRET_KEY": settings.secret_key,
           "TALKWIRE_PUBLISHABLE_KEY": settings.publishable_key, "TALKWIRE_SIP_BIND": "127.0.0.1:0",
           "TALKWIRE_SIP_TRUNK": trunk.uri}
    env.pop("TALKWIRE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_api.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--providers",
        "fake", "--data-dir", str(settings.data_dir), "--json", "--log-level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    try:
        banner = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        async with httpx.AsyncClient(base_url=banner["url"].rstrip("/"), timeout=20,
                                     headers={"X-API-Key": settings.secret_key}) as api:
            yield api, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def ok(api: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await api.request(method, path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


async def test_a_killed_server_retries_the_lost_call_and_dials_nobody_twice(settings, tmp_path):
    trunk = await CampaignTrunk.start(tmp_path / "sipp")
    ringing, first, second = f"{LATE}0001", f"{ANSWER}0001", f"{ANSWER}0002"
    try:
        async with server_process(settings, trunk) as (api, proc):
            agent = await ok(api, "POST", "/assistant", json={
                "name": "Campaign agent", "welcome_message": "Hello.", "agent_prompt": "Be brief.", **FAKE_STACK})
            campaign = (await ok(api, "POST", "/campaigns", json=campaign_body(
                agent["id"], [ringing, first, second], use_vanira_managed=True, max_concurrent_calls=1,
                start_campaign=True, retry_failed_calls=True, max_retries_failed=1,
                retry_delay_failed_seconds=0)))["campaign_id"]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not any(d.callee == ringing for d in trunk.dialogs()):  # it rings for 3 s
                assert loop.time() < deadline, "the campaign never dialled"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        async with server_process(settings, trunk) as (api, _):
            for _ in range(300):
                found = await ok(api, "GET", f"/campaigns/{campaign}")
                if found["status"] == "completed":
                    break
                await asyncio.sleep(0.2)
            assert found["status"] == "completed", found
            page = await ok(api, "GET", f"/campaigns/{campaign}/prospects")
            candidates = {p["phone"]: p for p in page["prospects"]}
            calls = await ok(api, "GET", f"/calls?campaign_id={campaign}")
            lost = await ok(api, "GET", f"/calls/{candidates[ringing]['call_ids'][0]}")
            listed = {c["id"]: c for c in (await ok(api, "GET", "/campaigns"))["data"]}[campaign]
    finally:
        await trunk.stop()
    dialled = [d.callee for d in trunk.dialogs()]
    assert sorted(dialled) == sorted([ringing, ringing, first, second]), dialled  # the lost call again, no one else
    assert (lost["status"], lost["end_reason"]) == ("failed", "worker_lost"), lost
    assert (candidates[ringing]["attempts"], candidates[ringing]["status"], len(candidates[ringing]["call_ids"])) \
        == (2, "completed", 2)
    for number in (first, second):
        assert (candidates[number]["attempts"], candidates[number]["status"]) == (1, "completed")
    assert calls["total"] == 4
    assert (listed["successful_calls"], listed["failed_calls"]) == (3, 1)
