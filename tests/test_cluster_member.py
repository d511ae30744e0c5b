"""This process as a member (ClusterMember): it joins the deployment, takes placements, dials what is handed to
it once, registers its calls, drains, leaves; and at start it marks lost the calls an earlier run of the same
member name left open."""
from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AbstractAsyncContextManager

import pytest
from redis.asyncio import Redis

from control_api.cluster.handoff import DialRequest
from control_api.cluster.keys import Keyspace
from control_api.cluster.node import ClusterMember
from control_api.cluster.outbound import ClusterOutboundCalls
from control_api.cluster.placement import NoRoom
from control_api.cluster.presence import live_members
from control_api.settings import Settings
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.models import Agent, Client
from media.end_reason import EndReason


class Dialer:
    def __init__(self) -> None:
        self.requests: list[DialRequest] = []

    async def dial(self, request: DialRequest) -> None:
        self.requests.append(request)


def member_settings(settings: Settings, redis_url: str, member_id: str, **fields: object) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url, "member_id": member_id, "max_calls": 2,
                                       "heartbeat_interval": 0.1, "heartbeat_ttl": 0.5, **fields})


async def test_members_place_hand_off_register_drain_and_leave(settings: Settings, db: Database, redis_client: Redis,
                                                               redis_url: str, cluster_keys: Keyspace) -> None:
    load: dict[str, Counter[str]] = {"m1": Counter(), "m2": Counter()}
    dialers = {"m1": Dialer(), "m2": Dialer()}

    def join(name: str, sip: str) -> AbstractAsyncContextManager[ClusterMember]:
        return ClusterMember.open(member_settings(settings, redis_url, name), db, member_id=name,
                                  url=f"http://{name}.test/", sip=sip, load=lambda: dict(load[name]),
                                  dialer=dialers[name], namespace=cluster_keys.namespace)

    async with join("m1", "127.0.0.1:5071") as m1, join("m2", "127.0.0.1:5072") as m2:
        members = {m.id: m for m in (m1, m2)}
        assert m1.healthy and {m.id for m in await live_members(redis_client, cluster_keys)} == {"m1", "m2"}

        # m1 places two phone calls: one lands on each member; each is dialed once by its member.
        placements = [await m1.place(), await m1.place()]
        assert sorted(p.member_id for p in placements) == ["m1", "m2"]
        assert {p.url for p in placements} == {"http://m1.test", "http://m2.test"}
        for i, placement in enumerate(placements):
            request = DialRequest(call_id=f"call-{i}", client_id="c", agent_id="a", to_number="+15550100",
                                  reservation=placement.reservation)
            await m1.hand_off(placement, request)
            await m1.hand_off(placement, request)  # a retried hand-off
        for _ in range(100):
            if all(dialer.requests for dialer in dialers.values()):
                break
            await asyncio.sleep(0.02)
        assert [len(d.requests) for d in dialers.values()] == [1, 1]

        # Each call starts on its member: the load counts it once, the directory finds it from anywhere.
        for placement in placements:
            owner = members[placement.member_id]
            call_id = next(r.call_id for r in dialers[owner.id].requests)
            load[owner.id]["sip"] += 1
            await owner.call_started(call_id, placement.reservation)
        await asyncio.sleep(0.3)
        states = {m.id: m for m in await live_members(redis_client, cluster_keys)}
        assert {k: (s.calls, s.reserved) for k, s in states.items()} == {"m1": (1, 0), "m2": (1, 0)}
        found = await m2.directory.owner("call-0")
        assert found is not None and found.id == dialers_owner(dialers, "call-0")

        # m2 drains: no more placements on it; its call ends and the drain completes.
        drained = asyncio.create_task(m2.drain(lambda: sum(load["m2"].values()), within=5))
        await asyncio.sleep(0.2)
        assert (await m1.place()).member_id == "m1"
        ended = next(r.call_id for r in dialers["m2"].requests)
        load["m2"]["sip"] -= 1
        await m2.call_ended(ended)
        assert await drained is True
        assert await m1.directory.owner_id(ended) is None
    assert await live_members(redis_client, cluster_keys) == []  # both left cleanly


def dialers_owner(dialers: dict[str, Dialer], call_id: str) -> str:
    return next(name for name, dialer in dialers.items() if any(r.call_id == call_id for r in dialer.requests))


async def test_a_restarted_member_marks_its_earlier_runs_open_calls_lost(settings: Settings, db: Database,
                                                                         redis_url: str,
                                                                         cluster_keys: Keyspace) -> None:
    async with db.session() as session:
        client = Client(name="test")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="agent")
        session.add(agent)
        await session.flush()
        client_id, agent_id = client.id, agent.id
    call = await call_store.create_call(db, client_id=client_id, agent_id=agent_id, type="web_call",
                                        direction="inbound", status="in-progress")
    await call_store.update_call(db, call.id, extra_details={"worker": "m1"})
    async with ClusterMember.open(member_settings(settings, redis_url, "m1"), db, member_id="m1",
                                  url="http://m1.test", sip=None, load=dict, namespace=cluster_keys.namespace):
        record = await call_store.get_call(db, call.id)
        assert record is not None and (record.status, record.end_reason) == ("failed", "worker_lost")


async def test_a_member_starts_without_redis_and_is_not_healthy(settings: Settings, db: Database) -> None:
    lost = member_settings(settings, "redis://127.0.0.1:1/0", "m1")
    async with ClusterMember.open(lost, db, member_id="m1", url="http://m1.test", sip=None, load=dict,
                                  namespace="nowhere") as member:
        assert not member.healthy


async def test_outbound_calls_are_recorded_on_the_chosen_member_and_followed_to_their_end(
        settings: Settings, db: Database, redis_url: str, cluster_keys: Keyspace) -> None:
    client_id, agent_id = await seed_agent(db)
    dialers = {"m1": Dialer(), "m2": Dialer()}

    def join(name: str) -> AbstractAsyncContextManager[ClusterMember]:
        return ClusterMember.open(member_settings(settings, redis_url, name, max_calls=1), db, member_id=name,
                                  url=f"http://{name}.test", sip=None, load=dict, dialer=dialers[name],
                                  namespace=cluster_keys.namespace)

    async with join("m1") as m1, join("m2"):
        calls = ClusterOutboundCalls(m1, db, poll=0.05)
        ids = [await calls.dial(client_id=client_id, agent_id=agent_id, to_number=f"+1555010{i}",
                                from_number="+15550199", campaign_id=None) for i in range(2)]
        with pytest.raises(NoRoom):  # one place each, both reserved
            await calls.dial(client_id=client_id, agent_id=agent_id, to_number="+15550109")
        for _ in range(100):
            if all(d.requests for d in dialers.values()):
                break
            await asyncio.sleep(0.02)
        workers = set()
        for call_id in ids:
            record = await call_store.get_call(db, call_id)
            assert record is not None and record.status == "triggered" and record.phone_to.startswith("+1555010")
            worker = record.extra_details["worker"]
            workers.add(worker)
            request = next(r for r in dialers[worker].requests if r.call_id == call_id)  # dialed by its member
            assert request.reservation == call_id and request.from_number == "+15550199"
        assert workers == {"m1", "m2"}

        # The member that dialed reports the outcome in the record; whoever placed the call sees it end.
        waiting = asyncio.create_task(calls.wait_ended(ids[0]))
        await call_store.set_status(db, ids[0], "in-progress")
        await call_store.finish_call(db, ids[0], end_reason=EndReason.REMOTE_HANGUP)
        end = await asyncio.wait_for(waiting, 5)
        assert (end.answered, end.end_reason) == (True, EndReason.REMOTE_HANGUP)
        await call_store.finish_call(db, ids[1], end_reason=EndReason.NO_ANSWER)
        end = await calls.wait_ended(ids[1])
        assert (end.answered, end.end_reason) == (False, EndReason.NO_ANSWER)


async def seed_agent(db: Database) -> tuple[str, str]:
    async with db.session() as session:
        client = Client(name="test")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="agent")
        session.add(agent)
        await session.flush()
        return client.id, agent.id
