"""The live-calls registry: a web offer's reservation, a running call, and ending them all at shutdown."""
from __future__ import annotations

import asyncio

from control_api.live_calls import LiveCalls
from legs import MemoryLeg
from media.end_reason import EndReason


class FakeCall:
    """A live call that is over once its leg has ended (a session finishes its record then)."""

    def __init__(self) -> None:
        self.leg = MemoryLeg(16000)
        self.conversation = None

    async def finished(self) -> None:
        await self.leg.ended


async def test_a_reservation_holds_the_id_until_released_and_reads_as_no_live_call() -> None:
    calls = LiveCalls()
    assert calls.reserve("a") and not calls.reserve("a")  # a second offer for the same call is refused
    assert "a" in calls and calls.get("a") is None and len(calls) == 0
    calls.release("a")
    assert "a" not in calls and calls.reserve("a")


async def test_a_started_call_replaces_its_reservation_and_only_it_is_removed() -> None:
    calls, first, second = LiveCalls(), FakeCall(), FakeCall()
    calls.reserve("a")
    calls.add("a", first)
    calls.release("a")  # a live call is not a reservation: it stays
    assert calls.get("a") is first and len(calls) == 1
    calls.remove("a", second)  # not the registered call: nothing happens
    assert calls.get("a") is first
    calls.remove("a", first)
    assert "a" not in calls


async def test_end_all_hangs_up_every_live_call_and_waits_for_each() -> None:
    calls, first, second = LiveCalls(), FakeCall(), FakeCall()
    calls.add("a", first)
    calls.add("b", second)
    calls.reserve("c")
    await asyncio.wait_for(calls.end_all(EndReason.SERVER_SHUTDOWN), 5)
    assert first.leg.hangup_reason == second.leg.hangup_reason == "server_shutdown"
