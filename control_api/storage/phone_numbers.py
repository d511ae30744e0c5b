"""Phone numbers: E.164 numbers on a SIP trunk, each answered by an agent.

A number is unique across the server (inbound calls are routed by the number dialled), so the inbound lookup
`find_dialled_number` is the one query here not narrowed to a client: the number itself says whose it is.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control_api.storage import Database
from control_api.storage.models import Agent, PhoneNumber, SipTrunk
from control_api.storage.owned import list_owned, owned, update_owned


class NumberTaken(Exception):
    """Another client (or a concurrent request) stored this number first: numbers are unique server-wide."""


@dataclass(frozen=True, slots=True)
class DialledNumber:
    """A number an inbound call dialled, with the agent it routes to (None: no agent, or a deleted one)."""

    number: PhoneNumber
    agent: Agent | None


async def find_dialled_number(db: Database, spellings: Iterable[str]) -> DialledNumber | None:
    """The stored number spelled as one of `spellings` (any client's), with its agent; None when unknown."""
    async with db.session() as session:
        number = await session.scalar(select(PhoneNumber).where(PhoneNumber.number.in_(list(spellings))))
        if number is None:
            return None
        agent = await session.get(Agent, number.agent_id) if number.agent_id is not None else None
    return DialledNumber(number, agent)


async def list_numbers(db: Database, client_id: str) -> list[PhoneNumber]:
    return await list_owned(db, PhoneNumber, client_id)


async def find_number(db: Database, client_id: str, number: str) -> PhoneNumber | None:
    """The client's phone number spelled exactly `number`."""
    query = select(PhoneNumber).where(PhoneNumber.client_id == client_id, PhoneNumber.number == number)
    async with db.session() as session:
        return await session.scalar(query)


async def number_taken(db: Database, number: str) -> bool:
    """Whether any client has stored `number`."""
    async with db.session() as session:
        return await session.scalar(select(PhoneNumber.id).where(PhoneNumber.number == number)) is not None


async def add_number(
    db: Database, client_id: str, fields: Mapping[str, Any], *,
    trunk_id: str | None = None, new_trunk: Mapping[str, Any] | None = None,
) -> tuple[PhoneNumber, SipTrunk]:
    """Store a number on the client's trunk `trunk_id`, or on a trunk stored with it from `new_trunk` (one transaction).

    Raises NumberTaken when the number was stored meanwhile, LookupError when the trunk is not the client's."""
    try:
        async with db.session() as session:
            if new_trunk is not None:
                trunk = SipTrunk(client_id=client_id, **new_trunk)
                session.add(trunk)
                await session.flush()
            else:
                found = await owned(session, SipTrunk, client_id, trunk_id)
                if found is None:
                    raise LookupError(f"no SIP trunk {trunk_id}")
                trunk = found
            number = PhoneNumber(client_id=client_id, trunk_id=trunk.id, **fields)
            session.add(number)
            await session.flush()
    except IntegrityError:
        raise NumberTaken(fields.get("number")) from None
    return number, trunk


async def assign_agent(db: Database, client_id: str, number_id: str, agent_id: str) -> PhoneNumber | None:
    """Route the client's number to `agent_id` (the caller checks the agent is theirs)."""
    return await update_owned(db, PhoneNumber, client_id, number_id, {"agent_id": agent_id})


async def delete_number(db: Database, client_id: str, number: str) -> PhoneNumber | None:
    """Delete the client's number spelled exactly `number`; the row as it was, None when they have none."""
    query = select(PhoneNumber).where(PhoneNumber.client_id == client_id, PhoneNumber.number == number)
    async with db.session() as session:
        row = await session.scalar(query)
        if row is not None:
            await session.delete(row)
    return row
