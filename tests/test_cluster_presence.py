"""Presence and placement on a real Redis: members appear, drop out when their heartbeat stops, and new calls
go to the least-loaded live member with room, never overfilling one even when many are placed at once."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.cluster.keys import Keyspace
from control_api.cluster.member import MemberState, generated_member_id
from control_api.cluster.placement import NoRoom, Placer
from control_api.cluster.presence import Presence, live_members


class Load:
    """A member's live calls by leg, as its LiveCalls would report them."""

    def __init__(self, **legs: int) -> None:
        self.legs = Counter(legs)

    def __call__(self) -> dict[str, int]:
        return dict(self.legs)


def presence(redis_client: Redis, keys: Keyspace, member_id: str, *, capacity: int = 0, load: Load | None = None,
             ttl: float = 0.5) -> Presence:
    state = MemberState(id=member_id, url=f"http://{member_id}.test", sip=f"127.0.0.1:{5060 + len(member_id)}",
                        capacity=capacity)
    return Presence(redis_client, keys, state, load or Load(), interval=ttl / 5, ttl=ttl)


async def test_member_publishes_its_state_and_drops_out_when_its_heartbeat_stops(redis_client: Redis,
                                                                                 cluster_keys: Keyspace) -> None:
    a = presence(redis_client, cluster_keys, "a", capacity=20, load=Load(web=2, sip=5))
    b = presence(redis_client, cluster_keys, "b", capacity=10)
    beat_a, beat_b = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.2)
        members = {m.id: m for m in await live_members(redis_client, cluster_keys)}
        assert set(members) == {"a", "b"} and a.healthy
        assert members["a"].url == "http://a.test" and members["a"].capacity == 20
        assert dict(members["a"].calls_by_leg) == {"web": 2, "sip": 5} and members["a"].calls == 7
        assert members["a"].sip == "127.0.0.1:5061" and not members["a"].draining

        await a.set_draining()
        assert {m.id: m.draining for m in await live_members(redis_client, cluster_keys)} == {"a": True, "b": False}

        beat_b.cancel()  # b dies: no clean leave
        await asyncio.gather(beat_b, return_exceptions=True)
        stopped = time.monotonic()
        while "b" in {m.id for m in await live_members(redis_client, cluster_keys)}:
            assert time.monotonic() - stopped <= b.ttl + 0.2, "b is still listed after its heartbeat ran out"
            await asyncio.sleep(0.02)
        assert await redis_client.exists(cluster_keys.member("b")) == 0  # the hash expired with it
    finally:
        beat_a.cancel()
        beat_b.cancel()
        await asyncio.gather(beat_a, beat_b, return_exceptions=True)
    await a.leave()
    assert await live_members(redis_client, cluster_keys) == []


async def test_a_member_that_cannot_reach_redis_is_not_healthy() -> None:
    lost = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    member = presence(lost, Keyspace("nowhere"), "a")
    with pytest.raises(RedisError):
        await member.publish()
    assert not member.healthy
    await lost.aclose()


async def test_placement_goes_to_the_least_loaded_member_and_skips_draining_and_full_ones(
        redis_client: Redis, cluster_keys: Keyspace) -> None:
    a = presence(redis_client, cluster_keys, "a", capacity=10, load=Load(web=5), ttl=30)
    b = presence(redis_client, cluster_keys, "b", capacity=10, load=Load(sip=2), ttl=30)
    c = presence(redis_client, cluster_keys, "c", capacity=10, ttl=30)
    for member in (a, b, c):
        await member.publish()
    placer = Placer(redis_client, cluster_keys)
    chosen = [(await placer.place()).member_id for _ in range(7)]
    # c (0) takes the first two, then b and c alternate (a tie goes to the smaller id) until both have 5.
    assert chosen == ["c", "c", "b", "c", "b", "c", "b"]
    assert (await placer.place()).member_id == "c"
    placement = await placer.place()  # all three at 5: a
    assert placement.member_id == "a" and placement.url == "http://a.test" and placement.load == 5

    await c.set_draining()
    assert {(await placer.place()).member_id for _ in range(4)} <= {"a", "b"}

    full = presence(redis_client, cluster_keys, "d", capacity=1, load=Load(web=1), ttl=30)
    await full.publish()
    assert "d" not in {(await placer.place()).member_id for _ in range(3)}


async def test_concurrent_placements_spread_evenly_and_never_overfill(redis_client: Redis, redis_url: str,
                                                                       cluster_keys: Keyspace) -> None:
    for name in ("a", "b", "c"):
        await presence(redis_client, cluster_keys, name, capacity=10, ttl=30).publish()
    # Five placing members, each with its own connection, placing 40 calls at once: exactly 30 fit.
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(5)]
    placers = [Placer(client, cluster_keys) for client in clients]

    async def place(i: int) -> str | None:
        try:
            return (await placers[i % 5].place()).member_id
        except NoRoom:
            return None

    try:
        results = await asyncio.gather(*(place(i) for i in range(40)))
    finally:
        for client in clients:
            await client.aclose()
    assert Counter(results) == Counter({"a": 10, "b": 10, "c": 10, None: 10})
    with pytest.raises(NoRoom) as refused:
        await Placer(redis_client, cluster_keys).place()
    assert refused.value.retry_after > 0


async def test_a_reservation_counts_until_taken_up_or_run_out(redis_client: Redis, cluster_keys: Keyspace) -> None:
    load = Load()
    a = presence(redis_client, cluster_keys, "a", capacity=2, load=load, ttl=30)
    await a.publish()
    placer = Placer(redis_client, cluster_keys, reservation_ttl=0.3)
    first = await placer.place()
    await placer.place()
    with pytest.raises(NoRoom):
        await placer.place()
    # The first call starts: its member counts it and drops its reservation in the same step.
    load.legs["web"] += 1
    a.took_up(first.reservation)
    await a.publish()
    [state] = await live_members(redis_client, cluster_keys)
    assert (state.calls, state.reserved) == (1, 1)
    # The second placement never arrives: its reservation runs out and the place is free again.
    await asyncio.sleep(0.35)
    assert (await placer.place()).member_id == "a"
    with pytest.raises(NoRoom):  # full again
        await placer.place()


async def test_a_cancelled_placement_frees_its_place(redis_client: Redis, cluster_keys: Keyspace) -> None:
    await presence(redis_client, cluster_keys, "a", capacity=1, ttl=30).publish()
    placer = Placer(redis_client, cluster_keys)
    placement = await placer.place("call-1")  # named by the call it is for
    assert placement.reservation == "call-1"
    await placer.cancel(placement)
    assert (await placer.place()).member_id == "a"


async def test_no_member_no_room(redis_client: Redis, cluster_keys: Keyspace) -> None:
    with pytest.raises(NoRoom):
        await Placer(redis_client, cluster_keys).place()


def test_a_generated_member_name_is_new_each_time() -> None:
    names = {generated_member_id() for _ in range(50)}
    assert len(names) == 50 and all("-" in name for name in names)
