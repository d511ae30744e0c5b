"""The dialer's batched writes: what attempts report is written once per tick, and a batch that fails is written
item by item, so one item the database refuses cannot hold back the others (SQLite and PostgreSQL)."""
from __future__ import annotations

from collections.abc import Sequence

import pytest

from control_api.dialer.loop import Dialer
from control_api.storage import Database
from control_api.storage import dialer as store
from tests.dialer_fakes import PHONES, START, ScriptedPlacer, VirtualClock, campaign, candidates, run_for, seed_campaign


async def test_one_refused_write_does_not_stall_the_others(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock(START)
    placer = ScriptedPlacer(clock, duration=1.0)
    campaign_id = await seed_campaign(db, PHONES[:3], managed=True, max_concurrent_calls=3)
    real = store.note_calls
    refused: list[int] = []

    async def note_calls(database: Database, calls: Sequence[tuple[str, str, str]]) -> None:
        if any(call_id == "call-2" for _, _, call_id in calls):
            refused.append(len(calls))
            raise RuntimeError("refused")
        await real(database, calls)

    monkeypatch.setattr(store, "note_calls", note_calls)
    dialer = Dialer(db, placer, dialer_id="t", max_cps=100.0, clock=clock)
    await run_for(dialer, clock, 8)
    rows = await candidates(db, campaign_id)
    assert sorted(row.status for row, _ in rows.values()) == ["completed"] * 3
    assert sorted(c for row, _ in rows.values() for c in row.call_ids) == ["call-1", "call-2", "call-3"]
    # The batch of three, then that item again (in the next ticks' batches and alone) until it is given up.
    assert refused[0] == 3 and set(refused[1:]) == {1}
    tried = len(refused)
    await run_for(dialer, clock, 3)
    assert len(refused) == tried
    assert (await campaign(db, campaign_id)).status == "completed"
    assert (await campaign(db, campaign_id)).successful_calls == 3
