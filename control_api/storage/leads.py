"""Leads: the prospects that calls and campaigns create."""
from __future__ import annotations

from sqlalchemy import func, select

from control_api.storage import Database
from control_api.storage.models import Prospect


async def lead_page(db: Database, client_id: str, limit: int, offset: int) -> tuple[list[Prospect], int]:
    """One page of the client's leads, newest first, and how many they have in all."""
    mine = Prospect.client_id == client_id
    page = select(Prospect).where(mine).order_by(Prospect.created_at.desc(), Prospect.id).limit(limit).offset(offset)
    async with db.session() as session:
        total = await session.scalar(select(func.count(Prospect.id)).where(mine))
        rows = list((await session.scalars(page)).all())
    return rows, total or 0
