"""A member that stops heartbeating: the survivors mark its open calls failed / worker_lost (on SQLite and on
PostgreSQL), only after it has been missing for the grace period, and leave every other call alone."""
from __future__ import annotations


from redis.asyncio import Redis

from control_api.cluster.directory import CallDirectory
from control_api.cluster.keys import Keyspace
from control_api.cluster.lost import LostMemberSweeper
from control_api.cluster.member import MemberState
from control_api.cluster.presence import Presence
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage import cluster as cluster_store
from control_api.storage.calls import CallStatus
from control_api.storage.models import Agent, Client
from media.end_reason import EndReason


async def seed_calls(db: Database, calls: list[tuple[str | None, CallStatus]]) -> list[str]:
    """One call per (member, status); member None: a record of a single-process server (no worker)."""
    async with db.session() as session:
        client = Client(name="test")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="agent")
        session.add(agent)
        await session.flush()
        client_id, agent_id = client.id, agent.id
    ids = []
    for worker, status in calls:
        call = await call_store.create_call(db, client_id=client_id, agent_id=agent_id, type="sip_call",
                                            direction="outbound", status="in-progress", phone_to="+15550100")
        if worker is not None:
            await call_store.update_call(db, call.id, extra_details={"worker": worker})
        if status in ("completed", "failed"):
            await call_store.finish_call(db, call.id, end_reason=EndReason.REMOTE_HANGUP, status=status)
        elif status == "triggered":
            await call_store.update_call(db, call.id, status="triggered")
        ids.append(call.id)
    return ids


async def test_open_calls_of_a_dead_member_are_marked_worker_lost_after_the_grace(
        db: Database, redis_client: Redis, cluster_keys: Keyspace) -> None:
    alive, dead_live, dead_ringing, dead_done, local = await seed_calls(db, [
        ("alive", "in-progress"), ("dead", "in-progress"), ("dead", "triggered"), ("dead", "completed"),
        (None, "in-progress")])
    assert await cluster_store.open_call_workers(db) == {"alive", "dead"}
    await Presence(redis_client, cluster_keys, MemberState(id="alive", url="http://alive", sip=None, capacity=0),
                   lambda: {"sip": 1}, interval=1, ttl=30).publish()
    directory = CallDirectory(redis_client, cluster_keys)
    await directory.add("dead", dead_live)
    await hand_off_marker(redis_client, cluster_keys)

    now = [100.0]
    sweeper = LostMemberSweeper(redis_client, cluster_keys, db, grace=3.0, clock=lambda: now[0])
    assert await sweeper.sweep() == {}  # missing, but not yet for the grace period
    now[0] += 2.9
    assert await sweeper.sweep() == {}
    now[0] += 0.2
    marked = await sweeper.sweep()
    assert marked == {"dead": sorted([dead_live, dead_ringing])}

    for call_id in (dead_live, dead_ringing):
        call = await call_store.get_call(db, call_id)
        assert call is not None and call.status == "failed" and call.end_reason == "worker_lost"
        assert call.extra_details["worker_lost"] == "dead" and call.ended_at is not None
        events = await call_store.list_events(db, call_id, "status")
        assert events[-1].payload == {"from": events[-1].payload["from"], "to": "failed", "reason": "worker_lost"}
    for call_id, status in ((alive, "in-progress"), (dead_done, "completed"), (local, "in-progress")):
        call = await call_store.get_call(db, call_id)
        assert call is not None and call.status == status
    assert await directory.owner_id(dead_live) is None
    assert await redis_client.exists(cluster_keys.inbox("dead")) == 0
    assert await sweeper.sweep() == {}  # nothing left to mark
    assert await cluster_store.mark_worker_lost(db, "dead") == []  # and marking again changes nothing


async def hand_off_marker(redis_client: Redis, keys: Keyspace) -> None:
    """A stale inbox of the dead member (the sweep drops it)."""
    await redis_client.xadd(keys.inbox("dead"), {"request": "{}"})


async def test_a_member_back_within_the_grace_keeps_its_calls(db: Database, redis_client: Redis,
                                                               cluster_keys: Keyspace) -> None:
    [call_id] = await seed_calls(db, [("flaky", "in-progress")])
    now = [0.0]
    sweeper = LostMemberSweeper(redis_client, cluster_keys, db, grace=3.0, clock=lambda: now[0])
    await sweeper.sweep()
    now[0] += 2.0
    flaky = Presence(redis_client, cluster_keys, MemberState(id="flaky", url="http://flaky", sip=None, capacity=0),
                     lambda: {"sip": 1}, interval=1, ttl=30)
    await flaky.publish()  # e.g. Redis restarted and the member's next heartbeat came
    await sweeper.sweep()
    await flaky.leave()
    now[0] += 2.0  # missing again, but only for 0 s of a new period
    assert await sweeper.sweep() == {}
    call = await call_store.get_call(db, call_id)
    assert call is not None and call.status == "in-progress"
