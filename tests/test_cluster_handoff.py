"""Hand-off of outbound phone calls through a member's Redis inbox: delivered at least once, dialed once, even
when the hand-off is repeated or the member stops between reading and acknowledging; and the call directory."""
from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from control_api.cluster.directory import CallDirectory
from control_api.cluster.handoff import DialRequest, Inbox, hand_off
from control_api.cluster.keys import INBOX_GROUP, Keyspace
from control_api.cluster.member import MemberState
from control_api.cluster.presence import Presence


class RecordingDialer:
    def __init__(self, *, fail_on: str | None = None) -> None:
        self.dialed: list[str] = []
        self.fail_on = fail_on

    async def dial(self, request: DialRequest) -> None:
        self.dialed.append(request.call_id)
        if request.call_id == self.fail_on:
            raise RuntimeError("no RTP port")


def request(call_id: str) -> DialRequest:
    return DialRequest(call_id=call_id, client_id="client", agent_id="agent", to_number="+15550100",
                       from_number="+15550199", name="Ada", ring_timeout=20.0, reservation="r-" + call_id)


def test_a_request_survives_the_wire() -> None:
    original = request("c1")
    assert DialRequest.decode(original.encode()) == original


async def test_each_handed_off_call_is_dialed_once_even_when_handed_off_twice(redis_client: Redis,
                                                                             cluster_keys: Keyspace) -> None:
    dialer = RecordingDialer(fail_on="c2")
    inbox = Inbox(redis_client, cluster_keys, "m1", dialer, block_ms=50)
    for call_id in ("c1", "c2", "c1", "c3"):  # c1 handed off twice (a retry); c2's dial fails
        await hand_off(redis_client, cluster_keys, "m1", request(call_id))
    assert await inbox.read_once(block_ms=50) == 4
    assert dialer.dialed == ["c1", "c2", "c3"]
    await hand_off(redis_client, cluster_keys, "m1", request("c2"))  # a failed dial is not dialed again either
    await inbox.read_once(block_ms=50)
    assert dialer.dialed == ["c1", "c2", "c3"]
    assert (await redis_client.xpending(cluster_keys.inbox("m1"), INBOX_GROUP))["pending"] == 0
    assert await redis_client.get(cluster_keys.dialed("c1")) == "m1"


async def test_entries_read_but_not_acknowledged_are_handled_after_a_restart_without_dialing_twice(
        redis_client: Redis, cluster_keys: Keyspace) -> None:
    first = Inbox(redis_client, cluster_keys, "m1", RecordingDialer(), block_ms=50)
    for call_id in ("c1", "c2"):
        await hand_off(redis_client, cluster_keys, "m1", request(call_id))
    # The member reads both entries, marks and dials c1, then dies before acknowledging either.
    await first._ensure_group()
    await redis_client.xreadgroup(INBOX_GROUP, "m1", {first.stream: ">"}, count=10)
    await redis_client.set(cluster_keys.dialed("c1"), "m1")
    assert (await redis_client.xpending(first.stream, INBOX_GROUP))["pending"] == 2

    dialer = RecordingDialer()
    restarted = Inbox(redis_client, cluster_keys, "m1", dialer, block_ms=50)
    task = asyncio.create_task(restarted.run())
    await hand_off(redis_client, cluster_keys, "m1", request("c3"))
    try:
        for _ in range(100):
            if len(dialer.dialed) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert dialer.dialed == ["c2", "c3"]  # c1 was dialed by the first run: never again
    assert (await redis_client.xpending(first.stream, INBOX_GROUP))["pending"] == 0


async def test_the_directory_finds_the_live_member_running_a_call(redis_client: Redis, cluster_keys: Keyspace) -> None:
    directory = CallDirectory(redis_client, cluster_keys)
    member = Presence(redis_client, cluster_keys, MemberState(id="m1", url="http://m1.test", sip=None, capacity=0),
                      lambda: {"web": 1}, interval=0.1, ttl=30)
    await member.publish()
    await directory.add("m1", "call-1")
    await directory.add("m2", "call-2")  # m2 never heartbeats: registered but not live
    owner = await directory.owner("call-1")
    assert owner is not None and owner.id == "m1" and owner.url == "http://m1.test"
    assert await directory.owner("call-2") is None and await directory.owner_id("call-2") == "m2"
    assert await directory.owner("unknown") is None
    await directory.remove("m1", "call-1")
    assert await directory.owner_id("call-1") is None
    assert await directory.forget("m2") == 1
    assert await directory.owner_id("call-2") is None
