"""Three members of one deployment (real Redis and PostgreSQL on loopback, FAKE providers), in this process:

- web calls created on one member spread over the three, and each offer is answered by the member its
  worker_url names (the aiortc caller); the deployment full → 503 OVER_CAPACITY with Retry-After;
- GET /calls/{id} reads the same on every member, and POST /calls/{id}/end on any member ends a call another
  member runs (the request is sent on to it);
- outbound phone calls created on any member are dialed by the member they were placed on: sipp sees each
  INVITE come from that member's SIP port.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from cluster_members import Member, in_process_members, wait_for
from sipp.harness import SIPP, start_sipp
from webrtc_caller import WebRtcCaller

pytestmark = [pytest.mark.postgres]


def live_on(member: Member, call_id: str) -> bool:
    assert member.runtime is not None
    return member.runtime.calls.get(call_id) is not None


async def ended(member: Member, call_id: str) -> dict:
    async def check() -> dict | None:
        record = await member.call(call_id)
        return record if record["status"] in ("completed", "failed") else None
    return await wait_for(check)


async def test_web_calls_spread_and_are_ended_from_any_member(tmp_path: Path, postgres_url: str,
                                                               redis_url: str) -> None:
    async with in_process_members(tmp_path, postgres_url, redis_url, 3, max_calls=1) as members:
        first = members[0]
        agent_id = await first.agent()
        callers = [WebRtcCaller() for _ in members]
        try:
            created = []
            for caller in callers:  # all created on the first member
                created.append(await caller.call(first.base_url, agent_id, first.publishable_key))
            by_url = {m.base_url: m for m in members}
            owners = []
            for body in created:
                owner = by_url[body["worker_url"].split("/webrtc")[0]]
                owners.append(owner)
                await wait_for(lambda o=owner, c=body["call_id"]: live_on(o, c))
                record = await members[2].call(body["call_id"])  # any member reads any call
                assert record["extra_details"]["worker"] == owner.id
            assert sorted(o.id for o in owners) == ["m1", "m2", "m3"]

            full = await first.request("POST", "/calls/create", json={"agent_id": agent_id, "type": "web"})
            assert full.status_code == 503, full.text
            assert full.json()["error"]["code"] == "OVER_CAPACITY"
            assert int(full.headers["Retry-After"]) >= 1

            for body, owner in zip(created, owners, strict=True):  # ended on a member that does not run it
                other = next(m for m in members if m is not owner)
                answer = await other.ok("POST", f"/calls/{body['call_id']}/end")
                assert answer["call_id"] == body["call_id"]
                record = await ended(other, body["call_id"])
                assert (record["status"], record["end_reason"]) == ("completed", "api_hangup")
        finally:
            await asyncio.gather(*(caller.close() for caller in callers))


@pytest.mark.sip
@pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")
async def test_phone_calls_are_dialed_by_the_member_placed_on(tmp_path: Path, postgres_url: str,
                                                              redis_url: str) -> None:
    sipp = await start_sipp(tmp_path, "uas_answer.xml", extra=["-m", "3"])
    trunk = f"sip:127.0.0.1:{sipp.port};transport=udp"
    try:
        async with in_process_members(tmp_path, postgres_url, redis_url, 3, max_calls=1,
                                      sip_trunk=trunk) as members:
            agent_id = await members[0].agent()
            call_ids = []
            for member in members:  # one created on each member
                body = await member.ok("POST", "/calls/create", json={
                    "agent_id": agent_id, "type": "sip", "sip_data": {"to": "+15550001111"}})
                call_ids.append(body["call_id"])

            async def answered(call_id: str) -> dict | None:
                record = await members[0].call(call_id)
                return record if record["answered_at"] and record["provider_call_id"] else None
            records = [await wait_for(lambda c=c: answered(c), timeout=30) for c in call_ids]
            workers = {r["extra_details"]["worker"] for r in records}
            assert workers == {"m1", "m2", "m3"}
            sip_ports = {m.id: m.sip_port for m in members}
            for member in members:  # ended from anywhere: m1 forwards to the owner
                for record in records:
                    if record["extra_details"]["worker"] == member.id:
                        assert live_on(member, record["id"])
            for record in records:
                await members[0].ok("POST", f"/calls/{record['id']}/end")
                assert (await ended(members[1], record["id"]))["end_reason"] == "api_hangup"
            assert await sipp.wait(30) == 0, sipp.explain()
            messages = sipp.messages()
            for record in records:
                block = next(b for b in messages.split("\n\n")
                             if record["provider_call_id"] in b and "INVITE sip:" in b)
                via = re.search(r"Via: SIP/2.0/UDP [\d.]+:(\d+)", block)
                assert via is not None, block
                port = int(via.group(1))
                assert port == sip_ports[record["extra_details"]["worker"]], block
    finally:
        if sipp.proc.returncode is None:
            sipp.proc.kill()
            await sipp.proc.wait()
