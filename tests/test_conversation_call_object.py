"""`agent_runtime.call.Call`, the one join of a leg and a conversation, on virtual time."""
from __future__ import annotations

import asyncio

from agent_runtime.call import Call
from agent_runtime.conversation import Conversation
from agent_runtime.updates import Ended
from legs import MemoryLeg
from test_conversation_machine import Harness, config, virtual


@virtual
async def test_end_hangs_up_with_the_reason_and_returns_it() -> None:
    h = Harness(welcome_message="Hello.")
    await h.wait_final("agent")
    assert await h.call.end("api_hangup") == "api_hangup"
    assert h.leg.hangup_reason == "api_hangup"
    assert h.call.end_reason == "api_hangup" and h.call.task is not None and h.call.task.done()
    updates = h.taken_updates()
    assert isinstance(updates[-1], Ended) and updates[-1].reason == "api_hangup"
    assert await h.call.end("again") == "api_hangup"  # ending an ended call changes nothing
    await h.leg.close()


@virtual
async def test_a_leg_that_never_connects_ends_with_connect_timeout() -> None:
    leg = MemoryLeg(16000)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    call = Call(leg, Conversation(leg, config(welcome_message="Hello.")), ready=never, ready_timeout=15)
    assert await call.run() == "connect_timeout"
    assert asyncio.get_running_loop().time() == 15
    assert leg.hangup_reason == "connect_timeout" and not leg.outbound.pushes
    await leg.close()


@virtual
async def test_a_crashed_conversation_ends_the_call_as_internal_error() -> None:
    leg = MemoryLeg(16000)
    conversation = Conversation(leg, config())

    async def crash() -> str:
        raise RuntimeError("a bug")

    conversation.run = crash  # type: ignore[method-assign]
    call = Call(leg, conversation)
    assert await call.run() == "internal_error"
    assert leg.hangup_reason == "internal_error"
    await leg.close()


@virtual
async def test_the_remote_side_hanging_up_ends_the_call_with_its_reason() -> None:
    h = Harness()
    await asyncio.sleep(1)
    h.leg.remote_hangup("remote_hangup")
    assert h.call.task is not None
    assert await h.call.task == "remote_hangup"
    assert h.leg.hangup_reason is None  # nothing to hang up: the other side did
    await h.leg.close()
