"""Calls nobody will finish: left open by a process that died, or web calls whose browser never connected.

    close_abandoned(db, worker)        start-up: open calls of this worker (or of none) → failed / worker_lost, but
                                       web calls never connected, which the sweep fails as not_connected (or which
                                       their browser may still connect after a quick restart)
    unconnected_web_calls(db, before)  the sweep: web calls created before `before` that never connected

Both keep what the call recorded (transcript, timeline, recording so far): the record is only finished, through
the same status change as any ending, so the `status` event is in the timeline. A record names the process that
runs it in `extra_details.worker`; in a deployment of many members a member closes only its own calls at start-up
(records from before workers were named have none, and are closed by whoever starts first).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, not_, or_, select

from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.models import Call
from media.end_reason import EndReason

OPEN_STATUSES = ("triggered", "in-progress")
SWEEP_BATCH = 500  # calls failed per sweep at most; the next sweep takes the rest


def _worker() -> ColumnElement[str]:
    """extra_details.worker as text (`->>` on PostgreSQL, `json_extract` on SQLite)."""
    return Call.extra_details["worker"].as_string()


async def close_abandoned(db: Database, worker: str) -> list[str]:
    """Finish every open call of `worker` (or naming no worker) that had begun (a phone call, or a web call whose
    browser connected) as `failed` / `worker_lost`: at start-up none of them can be live, their process is gone.
    The ids of the calls closed."""
    never_connected = and_(Call.type == "web_call", Call.recording_path.is_(None))
    query = (select(Call.id)
             .where(Call.status.in_(OPEN_STATUSES), or_(_worker() == worker, _worker().is_(None)),
                    not_(never_connected))
             .order_by(Call.id))
    async with db.session() as session:
        call_ids = list(await session.scalars(query))
    closed: list[str] = []
    for call_id in call_ids:
        call = await call_store.finish_call(db, call_id, end_reason=EndReason.WORKER_LOST,
                                            extra_details={"worker_lost": worker})
        if call.end_reason == EndReason.WORKER_LOST:
            closed.append(call_id)
    return closed


async def unconnected_web_calls(db: Database, created_before: datetime) -> list[str]:
    """Ids of web calls still `in-progress` that were created before `created_before` and never connected (one
    query; `call_store.fail_unconnected` re-checks each under its lock)."""
    query = (select(Call.id)
             .where(Call.status == "in-progress", Call.type == "web_call", Call.recording_path.is_(None),
                    Call.call_triggered_at < created_before)
             .order_by(Call.call_triggered_at)
             .limit(SWEEP_BATCH))
    async with db.session() as session:
        return list(await session.scalars(query))
