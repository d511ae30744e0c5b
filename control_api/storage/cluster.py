"""Call records seen from a deployment of many members: which member runs which open call, and the calls of a
member that died.

Each call record names the member that runs it in `extra_details.worker` (written when the record is created).
A member that stops heartbeating leaves its open calls (`triggered` / `in-progress`) behind; the survivors mark
them `failed` / `worker_lost` through `finish_call`, so the status event is in the timeline as for any ending.
Marking is idempotent: several survivors may do it at once and a call that already finished keeps its outcome.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, select

from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.models import Call
from media.end_reason import EndReason

OPEN_STATUSES = ("triggered", "in-progress")


def _worker() -> ColumnElement[str]:
    """extra_details.worker as text (`->>` on PostgreSQL, `json_extract` on SQLite)."""
    worker: ColumnElement[str] = Call.extra_details["worker"].as_string()
    return worker


async def open_call_workers(db: Database) -> set[str]:
    """The members named by open calls' records (records without a member are left out)."""
    worker = _worker()
    async with db.session() as session:
        rows = await session.scalars(
            select(worker).where(Call.status.in_(OPEN_STATUSES), worker.is_not(None)).distinct())
        return {name for name in rows if name}


async def open_calls_of(db: Database, member_id: str) -> list[str]:
    """Ids of the open calls whose record says `member_id` runs them."""
    async with db.session() as session:
        rows = await session.scalars(
            select(Call.id).where(Call.status.in_(OPEN_STATUSES), _worker() == member_id).order_by(Call.id))
        return list(rows)


async def mark_worker_lost(db: Database, member_id: str) -> list[str]:
    """Finish every open call of `member_id` as `failed` / `worker_lost`; the ids of those calls that ended so (a
    call that its member finished meanwhile keeps its own outcome and is left out)."""
    changed: list[str] = []
    for call_id in await open_calls_of(db, member_id):
        call = await call_store.finish_call(db, call_id, end_reason=EndReason.WORKER_LOST,
                                            extra_details={"worker_lost": member_id})
        if call.end_reason == EndReason.WORKER_LOST:
            changed.append(call_id)
    return changed
