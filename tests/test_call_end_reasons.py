"""How a call ended decides its stored status: every end reason, through a real call session, and a call whose
conversation crashes (stored `failed`, not `completed`).

Calls here run the real `CallSession` (conversation, timeline, recording) on an in-memory leg, inside the
server's runtime (FAKE providers), and the record is read back from the database.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette

from agent_runtime.providers.base import CatalogEntry, ProviderRegistry
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from control_api.call_services import CallServices
from control_api.call_session import CallSession, start_call
from control_api.runtime import Runtime
from control_api.storage import calls as call_store
from control_api.storage.agents import create_agent
from legs import MemoryLeg
from media.end_reason import EndReason


class CrashingTTS(FakeTTS):
    """A voice whose synthesis breaks with a bug (not a ProviderError): the conversation cannot go on."""

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        raise RuntimeError("voice exploded")
        yield np.zeros(0, np.int16)  # an async generator, as providers are


def fake_registry(tts: type[FakeTTS] = FakeTTS) -> ProviderRegistry:
    registry = ProviderRegistry()
    for kind, name in (("stt", "scripted"), ("llm", "echo"), ("tts", "tone")):
        registry.add(CatalogEntry(kind, "FAKE", name))
        registry.defaults[kind] = ("FAKE", name)
    registry.register("stt", "FAKE", lambda _name: FakeSTT())
    registry.register("llm", "FAKE", lambda _name: FakeLLM())
    registry.register("tts", "FAKE", lambda _name: tts())
    return registry


@pytest.fixture
async def runtime(app: Starlette) -> AsyncIterator[Runtime]:
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        runtime.providers = fake_registry()
        yield runtime


async def start(services: CallServices, client_id: str, agent: dict[str, Any]) -> tuple[CallSession, MemoryLeg]:
    call = await call_store.create_call(services.db, client_id=client_id, agent_id=agent["id"], type="web_call",
                                        direction="inbound", status="in-progress")
    leg = MemoryLeg(16000, clock=services.clock)
    session = await start_call(services, leg, call_id=call.id, client_id=client_id, agent=agent,
                               direction="outbound")
    return session, leg


async def stored_agent(runtime: Runtime) -> dict[str, Any]:
    row = await create_agent(runtime.db, runtime.bootstrap.client_id,
                             {"name": "Ender", "welcome_message": "Hello there, how can I help?",
                              "agent_prompt": "Be brief."})
    return {"id": row.id, "name": row.name, "welcome_message": row.welcome_message, "agent_prompt": "Be brief."}


async def test_every_end_reason_gives_its_status(runtime: Runtime) -> None:
    agent = await stored_agent(runtime)
    for reason in EndReason:
        session, leg = await start(runtime.services, runtime.bootstrap.client_id, agent)
        await asyncio.sleep(0.05)  # the conversation is running
        leg.remote_hangup(reason)
        await asyncio.wait_for(session.finished(), 10)
        record = await call_store.get_call(runtime.db, session.call_id)
        expected = "failed" if reason.failed else "completed"
        assert (record.status, record.end_reason) == (expected, reason.value), reason
        status_events = await call_store.list_events(runtime.db, session.call_id, "status")
        assert status_events[-1].payload == {"from": "in-progress", "to": expected, "reason": reason.value}
        assert session.call_id not in runtime.calls
    assert len(runtime.calls) == 0


async def test_a_crashed_conversation_is_a_failed_call(runtime: Runtime) -> None:
    """The agent's voice breaks during the welcome: the conversation ends with internal_error, the leg is hung
    up, and the record says `failed` (it used to say `completed`)."""
    runtime.providers = fake_registry(CrashingTTS)
    session, leg = await start(runtime.services, runtime.bootstrap.client_id, await stored_agent(runtime))
    await asyncio.wait_for(session.finished(), 10)
    record = await call_store.get_call(runtime.db, session.call_id)
    assert (record.status, record.end_reason) == ("failed", "internal_error")
    assert leg.hangup_reason == "internal_error"
    assert runtime.metrics.calls.labels("memory", "failed", "internal_error")._value.get() == 1


async def test_final_status_follows_the_vocabulary() -> None:
    assert [r for r in EndReason if call_store.final_status(r) == "failed"] == [r for r in EndReason if r.failed]
    assert call_store.final_status(None) == "completed"
    assert call_store.final_status("no_such_reason") == "failed"  # a reason nobody named is not a normal end
