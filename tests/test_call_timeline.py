"""The timeline writer: updates that queue up are written together, a failing write is retried (never dropped),
an action is on the timeline before it is carried out, and client events stop at the call's budget."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from agent_runtime.updates import ActionRequested, BargeIn, Ended, TranscriptTurn
from control_api import db_retry
from control_api.call_timeline import ClientEventBudget, ClientEventRecord, TimelineWriter
from control_api.metrics import Metrics
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.agents import create_agent
from control_api.storage.clients import ensure_default_client


@pytest.fixture
async def call(database_url: str) -> Any:
    db = await Database.open(database_url)
    client = await ensure_default_client(db)
    agent = await create_agent(db, client.client_id, {"name": "T", "welcome_message": "", "agent_prompt": ""})
    record = await call_store.create_call(db, client_id=client.client_id, agent_id=agent.id, type="web_call",
                                          direction="inbound", status="in-progress")
    yield db, client.client_id, record.id
    await db.close()


async def test_queued_updates_are_written_in_one_transaction_in_order(call: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db, client_id, call_id = call
    batches: list[int] = []
    real = call_store.append_events

    async def counting(db: Database, client_id: str, call_id: str,
                       entries: Sequence[tuple[str, Mapping[str, Any] | None]]) -> Any:
        batches.append(len(entries))
        return await real(db, client_id, call_id, entries)

    monkeypatch.setattr(call_store, "append_events", counting)
    performed: list[int] = []

    async def perform(action: Mapping[str, Any]) -> None:
        kinds = [e.kind for e in await call_store.list_events(db, call_id)]
        performed.append(len(kinds))  # what was on the timeline when the action ran

    writer = TimelineWriter(db, Metrics(), client_id, call_id, perform)
    updates: asyncio.Queue[object] = asyncio.Queue()
    for i in range(30):
        updates.put_nowait(TranscriptTurn("user" if i % 2 else "agent", f"turn {i}"))
    updates.put_nowait(ActionRequested({"type": "transfer", "target": "x"}))
    updates.put_nowait(BargeIn(120))
    updates.put_nowait(ClientEventRecord("context", {"data": {"page": "/"}}))
    updates.put_nowait(Ended("remote_hangup"))
    await writer.run(updates)

    assert batches == [31, 2]  # the turns and the action together, then what came after it
    assert performed == [31]
    events = await call_store.list_events(db, call_id)
    assert [e.seq for e in events] == list(range(1, 34))
    assert [e.payload.get("text") for e in events[:30]] == [f"turn {i}" for i in range(30)]
    assert [e.kind for e in events[30:]] == ["action", "barge_in", "client"]


async def test_a_failing_write_is_retried_until_it_is_stored(call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, client_id, call_id = call
    monkeypatch.setattr(db_retry, "FIRST_DELAY", 0.01)
    failures = 3
    real = call_store.append_events

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("INSERT INTO call_events", {}, Exception("database is locked"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(call_store, "append_events", flaky)
    writer = TimelineWriter(db, Metrics(), client_id, call_id, lambda action: asyncio.sleep(0))
    updates: asyncio.Queue[object] = asyncio.Queue()
    updates.put_nowait(TranscriptTurn("user", "keep me"))
    updates.put_nowait(Ended("remote_hangup"))
    await writer.run(updates)
    assert failures == 0
    assert [(t["role"], t["text"]) for t in await call_store.transcript(db, call_id)] == [("user", "keep me")]


def test_the_client_event_budget_counts_rows_and_bytes() -> None:
    budget = ClientEventBudget(max_rows=3, max_bytes=110)
    assert budget.admit({"a": "x" * 40}) and budget.admit({"b": "y" * 40})
    assert not budget.admit({"c": "z" * 40})  # over the bytes: refused, not counted
    assert budget.admit({"d": 1}) and not budget.admit({"e": 1})  # the third row fits, a fourth does not
    assert (budget.rows, ClientEventBudget(0, 0).admit({"big": "x" * 10_000})) == (3, True)
