"""SIP trunks: the SIP providers a client's numbers live on (passwords are stored, never returned by the API)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from control_api.storage import Database
from control_api.storage.models import PhoneNumber, SipTrunk


async def create_trunk(db: Database, client_id: str, fields: Mapping[str, Any]) -> SipTrunk:
    async with db.session() as session:
        trunk = SipTrunk(client_id=client_id, **fields)
        session.add(trunk)
        await session.flush()
    return trunk


async def latest_trunk(db: Database, client_id: str) -> SipTrunk | None:
    """The client's most recently stored trunk."""
    query = (select(SipTrunk).where(SipTrunk.client_id == client_id)
             .order_by(SipTrunk.created_at.desc(), SipTrunk.id).limit(1))
    async with db.session() as session:
        return await session.scalar(query)


async def trunk_of_number(db: Database, client_id: str, number: str) -> SipTrunk | None:
    """The trunk the client's phone number `number` (exact spelling) is on; None without one."""
    query = select(SipTrunk).join(PhoneNumber, PhoneNumber.trunk_id == SipTrunk.id).where(
        PhoneNumber.client_id == client_id, PhoneNumber.number == number)
    async with db.session() as session:
        return await session.scalar(query)


async def all_trunks(db: Database) -> list[SipTrunk]:
    """Every stored trunk of every client: their hosts are trusted sources of inbound calls, and the ones with
    `register` keep a registration."""
    async with db.session() as session:
        return list(await session.scalars(select(SipTrunk).order_by(SipTrunk.created_at, SipTrunk.id)))
