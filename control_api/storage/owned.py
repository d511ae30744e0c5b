"""Rows that belong to a client (tenant), read and changed only through that client.

Every tenant table carries `client_id`. These helpers are the one place that rule is applied to a single
row: another client's row reads exactly like a missing one (None), so the API answers both with the same
404 and never confirms that an id exists elsewhere.

A row with `deleted_at` set (a deleted agent: `storage.agents.delete_agent`) reads like a missing one here too,
while the rows that refer to it (the agent's calls) stay readable.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.storage import Database
from control_api.storage.models import Base, utcnow

Row = TypeVar("Row", bound=Base)
Check = Callable[[Row], None]


async def owned(session: AsyncSession, model: type[Row], client_id: str, object_id: str | None) -> Row | None:
    """`model` by id in this session if it is `client_id`'s, else None."""
    if not object_id:
        return None
    columns = model.__table__.c
    return await session.scalar(select(model).where(columns.id == str(object_id), columns.client_id == client_id,
                                                    *_not_deleted(model)))


def _not_deleted(model: type[Base]) -> list[ColumnElement[bool]]:
    columns = model.__table__.c
    return [columns.deleted_at.is_(None)] if "deleted_at" in columns else []


async def get_owned(db: Database, model: type[Row], client_id: str, object_id: str | None) -> Row | None:
    async with db.session() as session:
        return await owned(session, model, client_id, object_id)


async def list_owned(db: Database, model: type[Row], client_id: str, *where: ColumnElement[bool]) -> list[Row]:
    """The client's rows of `model` (narrowed by `where`), oldest first."""
    columns = model.__table__.c
    query = (select(model).where(columns.client_id == client_id, *_not_deleted(model), *where)
             .order_by(columns.created_at, columns.id))
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def update_owned(
    db: Database, model: type[Row], client_id: str, object_id: str | None, fields: Mapping[str, Any],
    *, check: Check[Row] | None = None,
) -> Row | None:
    """Set `fields` on the client's row and stamp `updated_at`; None when it is not theirs.

    `check(row)` sees the row as it would be stored and may raise to keep it unchanged."""
    async with db.session() as session:
        row = await owned(session, model, client_id, object_id)
        if row is None:
            return None
        for name, value in {**fields, "updated_at": utcnow()}.items():
            setattr(row, name, value)
        if check is not None:
            check(row)
    return row


async def delete_owned(db: Database, model: type[Row], client_id: str, object_id: str | None) -> Row | None:
    """Delete the client's row and return it as it was; None when it is not theirs."""
    async with db.session() as session:
        row = await owned(session, model, client_id, object_id)
        if row is not None:
            await session.delete(row)
    return row
