"""A member that loses Redis or PostgreSQL for a while (a TCP proxy in between, cut and restored), mid-call:

- Redis lost: the live call goes on; `POST /calls/create` answers 503 OVER_CAPACITY with Retry-After until
  Redis is back, then calls are taken again;
- PostgreSQL lost: the live call goes on, and what happened on it meanwhile (the caller's context updates) is
  in its record once the database is back: nothing said on a call is lost.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from cluster_members import in_process_members, wait_for
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy
from webrtc_caller import WebRtcCaller

pytestmark = [pytest.mark.postgres]


async def test_a_member_cut_off_from_redis_keeps_its_call_and_refuses_new_ones(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    target = make_url(redis_url)
    async with TcpProxy(target.host or "127.0.0.1", target.port or 6379) as proxy:
        proxied = f"redis://127.0.0.1:{proxy.port}/0"
        async with in_process_members(tmp_path, postgres_url, proxied, 1) as (member,):
            agent_id = await member.agent()
            caller = WebRtcCaller()
            try:
                call_id = (await caller.call(member.base_url, agent_id, member.publishable_key))["call_id"]
                await proxy.cut()

                async def refused() -> bool:
                    answer = await member.request("POST", "/calls/create", json={"agent_id": agent_id, "type": "web"})
                    if answer.status_code != 503:
                        return False
                    assert answer.json()["error"]["code"] == "OVER_CAPACITY"
                    return int(answer.headers["Retry-After"]) >= 1
                await wait_for(refused, timeout=15)
                heard = len(caller.heard)
                await asyncio.sleep(1.0)
                assert caller.pc.connectionState == "connected" and len(caller.heard) > heard  # media goes on
                assert (await member.call(call_id))["status"] == "in-progress"

                await proxy.restore()

                async def taken() -> bool:
                    answer = await member.request("POST", "/calls/create", json={"agent_id": agent_id, "type": "web"})
                    return answer.status_code == 200
                await wait_for(taken, timeout=15)
                await member.ok("POST", f"/calls/{call_id}/end")
                assert (await member.call(call_id))["status"] == "completed"
            finally:
                await caller.close()


async def test_a_member_cut_off_from_postgresql_keeps_its_call_and_writes_it_later(
        tmp_path: Path, postgres_url: str, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="control_api.db_retry")
    target = make_url(postgres_url)
    async with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with in_process_members(tmp_path, proxied, redis_url, 1) as (member,):
            agent_id = await member.agent()
            caller = WebRtcCaller()
            try:
                call_id = (await caller.call(member.base_url, agent_id, member.publishable_key))["call_id"]
                await caller.wait_for_audio(seconds=0.2, timeout=30)
                await proxy.cut()
                for page in range(5):  # said while the database is gone
                    caller.send({"type": "client_context_update", "page": f"/during/{page}"})
                    await asyncio.sleep(0.3)
                heard = len(caller.heard)
                await asyncio.sleep(1.5)
                assert caller.pc.connectionState == "connected" and len(caller.heard) > heard  # media goes on
                await proxy.restore()
                caller.send({"type": "client_context_update", "page": "/after"})

                async def recorded() -> list[str]:
                    record = await member.call(call_id)
                    pages = [str(e["data"]) for e in record["timeline"] if e["kind"] == "client"]
                    return pages if len(pages) == 6 else []
                pages = await wait_for(recorded, timeout=30)
                assert any("timeline write failed" in r.getMessage() for r in caplog.records)  # it was cut off
                for page in [*(f"/during/{i}" for i in range(5)), "/after"]:
                    assert any(page in text for text in pages), (page, pages)
            finally:
                await caller.close()
            assert (await member.call(call_id))["status"] in ("completed", "in-progress")
