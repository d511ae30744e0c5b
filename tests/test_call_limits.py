"""Refusing calls cleanly, against the real server: rate limits for the publishable key, the tenant's quota, the
process's capacity, a database that fails, and a caller writing without bound to its call's timeline.

Each refusal is the seed's error envelope with a clear code and `Retry-After`; nothing answers 500.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LiveServer
from sipp.harness import SCENARIOS, SIPP, start_sipp
from sqlalchemy.exc import OperationalError
from test_call_control import error_code, http, record, serving
from webrtc_caller import WebRtcCaller

from control_api.settings import Settings
from loadtest.server import create_agent as create_fake_agent


async def refusals(server: LiveServer) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as plain:
        text = (await plain.get(f"{server.base_url}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("talkwire_refusals_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


async def test_a_flood_of_creates_with_the_publishable_key_is_mostly_refused(live_server: LiveServer) -> None:
    agent_id = await create_fake_agent(live_server.base_url, live_server.secret_key)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    retry_after: set[str] = set()
    started = time.monotonic()
    async with http(live_server, live_server.publishable_key) as public:

        async def create() -> None:
            response = await public.post("/calls/create", json={"agent_id": agent_id, "type": "web"})
            statuses[response.status_code] += 1
            if response.status_code != 200:
                codes[error_code(response)] += 1
                retry_after.add(response.headers.get("retry-after", ""))

        for _ in range(2200 // 100):
            await asyncio.gather(*(create() for _ in range(100)))
    elapsed = time.monotonic() - started
    async with http(live_server) as api:
        leads = (await api.get("/leads")).json()
        calls = (await api.get("/calls", params={"limit": 1})).json()["total"]
        secret = [(await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).status_code
                  for _ in range(15)]
    print(f"\n2,200 creates in {elapsed:.1f} s: {dict(statuses)}, codes {dict(codes)}, calls stored {calls}")
    assert set(statuses) <= {200, 429} and statuses[429] >= 2100, statuses
    assert codes == Counter({"RATE_LIMITED": statuses[429]})
    assert "" not in retry_after and all(int(value) >= 1 for value in retry_after)
    settings = live_server.settings
    allowed = settings.calls_burst_per_ip + settings.calls_per_minute_per_ip * (elapsed + 1) / 60
    assert statuses[200] <= allowed and calls == statuses[200]
    assert len(leads.get("leads", leads.get("data", []))) <= statuses[200] + 1
    assert secret == [200] * 15  # the operator's own key is not rate-limited
    assert (await refusals(live_server))["rate_limited"] >= statuses[429]


async def test_offers_are_rate_limited_per_address_before_any_lookup(settings: Settings) -> None:
    async with serving(settings, offers_burst_per_ip=3, offers_per_minute_per_ip=1) as server:
        worker = f"{server.base_url}/webrtc?agent=a_b"
        async with httpx.AsyncClient(timeout=10) as plain:
            answers = [await plain.post(worker, json={"sdp": "v=0", "type": "offer"}) for _ in range(5)]
    assert [r.status_code for r in answers] == [404, 404, 404, 429, 429]
    assert error_code(answers[-1]) == "RATE_LIMITED" and int(answers[-1].headers["retry-after"]) >= 1


async def connect(server: LiveServer, agent_id: str) -> tuple[WebRtcCaller, str]:
    caller = WebRtcCaller()
    created = await caller.call(server.base_url, agent_id, server.publishable_key)
    return caller, created["call_id"]


async def test_over_capacity_and_over_quota_are_refused_with_retry_after(settings: Settings) -> None:
    async with serving(settings, max_calls=1) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            waiting = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()
            caller, _ = await connect(server, agent_id)
            try:
                full = await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})
                offer_caller = WebRtcCaller()
                try:
                    async with httpx.AsyncClient(timeout=10) as plain:
                        offer = await plain.post(waiting["worker_url"],
                                                 json={"sdp": await offer_caller.create_offer(), "type": "offer"})
                finally:
                    await offer_caller.close()
            finally:
                await caller.close()
        assert full.status_code == 503 and error_code(full) == "OVER_CAPACITY" and full.headers["retry-after"]
        assert offer.status_code == 503 and error_code(offer) == "OVER_CAPACITY" and offer.headers["retry-after"]
        assert (await refusals(server))["over_capacity"] == 2

    async with serving(settings, max_calls_per_client=1) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        caller, _ = await connect(server, agent_id)
        try:
            async with http(server) as api:
                quota = await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})
        finally:
            await caller.close()
        assert quota.status_code == 429 and error_code(quota) == "OVER_QUOTA" and quota.headers["retry-after"]


async def test_a_failing_database_is_a_503_for_create_and_offer(settings: Settings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from control_api.storage import calls as call_store

    async def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT INTO calls", {}, Exception("database is locked"))

    async with serving(settings) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            created = (await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})).json()
            monkeypatch.setattr(call_store, "create_call", locked)
            monkeypatch.setattr(call_store, "get_call", locked)
            create = await api.post("/calls/create", json={"agent_id": agent_id, "type": "web"})
            async with httpx.AsyncClient(timeout=10) as plain:
                offer = await plain.post(created["worker_url"], json={"sdp": "v=0", "type": "offer"})
    for response in (create, offer):
        assert response.status_code == 503 and error_code(response) == "SERVICE_UNAVAILABLE", response.text
        assert response.headers["retry-after"] == "1"
        assert "locked" not in response.text


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def test_a_caller_flooding_context_updates_cannot_grow_the_record(settings: Settings) -> None:
    """500 context updates of 8 KB against a 256 KB timeline budget per call (the default is 1 MiB), sent as fast
    as the data channel's message rate limit lets them through: the timeline keeps the first ones up to the
    budget, the caller is told about each of the rest, and the call goes on."""
    budget = 256 * 1024
    async with serving(settings, max_timeline_bytes_per_call=budget) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        database = server.settings.data_dir / "talkwire.db"
        caller, call_id = await connect(server, agent_id)
        try:
            await caller.wait_for_audio(seconds=0.3, timeout=30)
            size_before, rss_before = database_size(database), rss_bytes(os.getpid())
            blob = "x" * 8_000
            started = time.monotonic()
            for i in range(500):  # a burst, then just under the data channel's own rate limit (20 messages/s)
                caller.send({"type": "client_context_update", "page": f"/p/{i}", "blob": blob})
                if i >= 50:
                    await asyncio.sleep(1 / 19)
            for _ in range(300):  # every message answered or stored
                errors = [m for m in caller.messages if m.get("type") == "error" and m.get("code") == "OVER_QUOTA"]
                if len(errors) >= 500 - budget // 8_000:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
            heard = len(caller.heard)
            await asyncio.sleep(0.5)
            still_up = caller.pc.connectionState == "connected" and len(caller.heard) > heard  # audio still flows
        finally:
            await caller.close()
        found = await record(server, call_id)
        async with http(server) as api:
            body = (await api.get(f"/calls/{call_id}")).content
        size_after, rss_after = database_size(database), rss_bytes(os.getpid())
    contexts = [e for e in found["timeline"] if e["kind"] == "client"]
    print(f"\n500 x 8 KB context updates in {elapsed:.1f} s: {len(contexts)} stored, {len(errors)} refused; "
          f"database +{(size_after - size_before) / 1e6:.1f} MB, server+test process RSS "
          f"+{(rss_after - rss_before) / 1e6:.1f} MB, GET /calls/{{id}} {len(body) / 1e6:.2f} MB")
    assert 1 <= len(contexts) <= budget // 8_000 and len(contexts) + len(errors) == 500
    assert len(body) < 2 * budget and size_after - size_before < 4 * budget
    assert still_up and found["status"] == "completed"


def database_size(path: Any) -> int:
    """The SQLite database with its write-ahead log."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_an_inbound_phone_call_past_the_capacity_is_refused_with_503(settings: Settings, tmp_path: Path) -> None:
    async with serving(settings, max_calls=1) as server:
        agent_id = await create_fake_agent(server.base_url, server.secret_key)
        async with http(server) as api:
            imported = await api.post("/phone-numbers/import", json={
                "phone_number": "+15557773333", "agent_id": agent_id, "trunk": {"host": "127.0.0.1", "port": 5060}})
            assert imported.status_code == 200, imported.text
        remote = f"127.0.0.1:{server.app.state.runtime.sip.local_address[1]}"
        caller, _ = await connect(server, agent_id)  # the one call this server takes
        try:
            rejected = await start_sipp(tmp_path, expecting_503(tmp_path), remote=remote, extra=["-s", "+15557773333"])
            assert await rejected.wait() == 0, rejected.explain()
        finally:
            await caller.close()
        assert "SIP/2.0 503 " in rejected.messages()
        assert (await refusals(server))["over_capacity"] >= 1


def expecting_503(workdir: Path) -> str:
    """tests/sipp/uac_rejected.xml expecting 503 where it expects 480 (an absolute path: start_sipp takes it)."""
    text = (SCENARIOS / "uac_rejected.xml").read_text().replace('<recv response="480" />', '<recv response="503" />')
    path = workdir / "uac_expects_503.xml"
    path.write_text(text)
    return str(path)
