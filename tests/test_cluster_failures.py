"""Three members as separate `talkwire serve` processes (real Redis and PostgreSQL on loopback, FAKE providers):

- `kill -9` of a member mid-call: its call is `failed` / `worker_lost` within seconds, new calls go to the others;
- SIGTERM drains: the member stops taking calls (placement skips it), its live calls go on, and it exits once
  they have ended.
"""
from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from cluster_members import Member, process_members, redis_db_url, wait_for
from redis.asyncio import Redis
from webrtc_caller import WebRtcCaller

pytestmark = [pytest.mark.postgres]


def owner(members: list[Member], worker_url: str) -> Member:
    return next(m for m in members if worker_url.startswith(m.base_url + "/"))


async def test_a_killed_member_loses_its_calls_and_a_drained_one_finishes_them(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    async with process_members(tmp_path, postgres_url, redis_url, 3, max_calls=3, drain_timeout=60) as members:
        m1, m2, m3 = members
        agent_id = await m1.agent()
        callers: list[WebRtcCaller] = []

        async def web_call(via: Member) -> tuple[WebRtcCaller, str, Member]:
            caller = WebRtcCaller()
            callers.append(caller)
            body = await caller.call(via.base_url, agent_id, via.publishable_key)
            return caller, body["call_id"], owner(members, body["worker_url"])

        try:
            placed = [await web_call(m2) for _ in range(3)]
            assert sorted(p[2].id for p in placed) == ["m1", "m2", "m3"]
            lost = next(call_id for _, call_id, on in placed if on is m1)

            assert m1.proc is not None
            m1.proc.kill()  # kill -9 mid-call
            killed = time.monotonic()

            async def marked_lost() -> dict | None:
                record = await m2.call(lost)
                return record if record["status"] != "in-progress" else None
            record = await wait_for(marked_lost, timeout=15)
            assert (record["status"], record["end_reason"]) == ("failed", "worker_lost")
            assert time.monotonic() - killed < 10

            _, again, on = await web_call(m3)  # new calls go to the survivors, and connect
            assert on in (m2, m3)

            drained_calls = [call_id for _, call_id, member in placed if member is m2]
            if on is m2:
                drained_calls.append(again)
            assert m2.proc is not None
            m2.proc.send_signal(signal.SIGTERM)
            redis = Redis.from_url(redis_db_url(redis_url), decode_responses=True)
            try:
                async def draining() -> bool:
                    return await redis.hget("talkwire:member:m2", "draining") == "1"
                await wait_for(draining, timeout=15)
            finally:
                await redis.aclose()
            for _ in range(2):  # placement skips the draining member
                _, _, on = await web_call(m3)
                assert on is m3
            await asyncio.sleep(1.0)
            assert m2.proc.poll() is None  # its calls go on
            for call_id in drained_calls:
                assert (await m3.call(call_id))["status"] == "in-progress"

            for caller, _, member in placed:  # the callers on the draining member hang up
                if member is m2:
                    await caller.close()
            for caller in callers[3:]:
                await caller.close()

            async def finished() -> bool:
                return all([(await m3.call(c))["status"] == "completed" for c in drained_calls])
            await wait_for(finished, timeout=30)
            exited = await asyncio.wait_for(asyncio.to_thread(m2.proc.wait), 30)
            assert exited in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
            for call_id in drained_calls:
                assert (await m3.call(call_id))["end_reason"] != "server_shutdown"
        finally:
            await asyncio.gather(*(caller.close() for caller in callers), return_exceptions=True)
