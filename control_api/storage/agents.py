"""Agents and what hangs off them: the widget, data-collection parameters, media handlers.

Two kinds of reader: the API (ORM rows, always through the owning client) and a live call
(`load_agent`, `load_agent_tools`, `load_media_handlers`: plain dicts, as the agent runtime takes them).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from control_api.storage import Database
from control_api.storage.models import (
    Agent,
    AgentTool,
    Base,
    DataCollection,
    MediaHandler,
    PhoneNumber,
    Tool,
    Widget,
    utcnow,
)
from control_api.storage.owned import get_owned, list_owned, owned


class DuplicateKey(ValueError):
    """The agent already extracts a value with this data-collection key."""


def row_dict(row: Base) -> dict[str, Any]:
    """Every column of `row`, by name."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


# ---- for a live call ------------------------------------------------------------------------------

async def load_agent(db: Database, client_id: str, agent_id: str) -> dict[str, Any] | None:
    """The client's agent as a dict of its columns; None when missing or another client's."""
    async with db.session() as session:
        agent = await owned(session, Agent, client_id, agent_id)
        return None if agent is None else row_dict(agent)


async def load_agent_tools(db: Database, agent_id: str) -> list[dict[str, Any]]:
    """The agent's attached tools as plain dicts; a detached/inactive attachment has `is_active: False`."""
    query = select(Tool, AgentTool.is_active).join(AgentTool, AgentTool.tool_id == Tool.id).where(
        AgentTool.agent_id == agent_id)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [{**row_dict(tool), "is_active": active} for tool, active in rows]


async def load_media_handlers(db: Database, agent_id: str) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = (await session.scalars(select(MediaHandler).where(MediaHandler.agent_id == agent_id))).all()
    return [row_dict(row) for row in rows]


# ---- agents ---------------------------------------------------------------------------------------

async def list_agents(db: Database, client_id: str) -> list[Agent]:
    return await list_owned(db, Agent, client_id)


async def active_agent_names(db: Database, client_id: str) -> list[tuple[str, str]]:
    """(id, name) of the client's active agents, oldest first."""
    query = (select(Agent.id, Agent.name).where(Agent.client_id == client_id, Agent.active.is_(True),
                                                Agent.deleted_at.is_(None))
             .order_by(Agent.created_at, Agent.id))
    async with db.session() as session:
        return [(agent_id, name) for agent_id, name in await session.execute(query)]


async def get_agent(db: Database, client_id: str, agent_id: str | None) -> Agent | None:
    """The client's agent; None when missing or another client's."""
    return await get_owned(db, Agent, client_id, agent_id)


async def create_agent(db: Database, client_id: str, fields: Mapping[str, Any]) -> Agent:
    """A new agent with its widget (default colours)."""
    async with db.session() as session:
        agent = Agent(client_id=client_id, **fields)
        session.add(agent)
        await session.flush()
        session.add(Widget(client_id=client_id, agent_id=agent.id))
    return agent


async def delete_agent(db: Database, client_id: str, agent_id: str) -> Agent | None:
    """Delete the client's agent softly (`deleted_at`), so its calls stay readable: gone from the API, it takes
    no more calls; its widget, data collection, media handlers and tool attachments are deleted and its phone
    numbers unassigned, as before. None when it is not the client's (or deleted already)."""
    async with db.session() as session:
        agent = await owned(session, Agent, client_id, agent_id)
        if agent is None:
            return None
        agent.deleted_at = agent.updated_at = utcnow()
        for child in (Widget, DataCollection, MediaHandler, AgentTool):
            await session.execute(delete(child).where(child.agent_id == agent.id))
        await session.execute(update(PhoneNumber).where(PhoneNumber.agent_id == agent.id).values(agent_id=None))
    return agent


async def seed_first_agents(
    db: Database, client_id: str, first: Mapping[str, Any], second: Mapping[str, Any],
    second_tools: Sequence[Mapping[str, Any]],
) -> str | None:
    """For a client with no agent yet: store `first`, then `second` listed right after it (created 1 ms later)
    with `second_tools` (normalised tool columns) attached; the first agent's id, None when they had agents."""
    async with db.session() as session:
        if await session.scalar(select(func.count(Agent.id)).where(Agent.client_id == client_id)):
            return None
        agent = Agent(client_id=client_id, **first)
        session.add(agent)
        await session.flush()
        follower = Agent(client_id=client_id, created_at=agent.created_at + timedelta(milliseconds=1), **second)
        session.add(follower)
        await session.flush()
        for fields in second_tools:
            tool = Tool(client_id=client_id, **fields)
            session.add(tool)
            await session.flush()
            session.add(AgentTool(client_id=client_id, agent_id=follower.id, tool_id=tool.id))
    return agent.id


# ---- widget ---------------------------------------------------------------------------------------

async def agent_widget(db: Database, client_id: str, agent_id: str) -> Widget | None:
    """The agent's widget, created with default colours on first use; None when the agent is not the client's."""
    async with db.session() as session:
        agent = await owned(session, Agent, client_id, agent_id)
        if agent is None:
            return None
        widget = await session.scalar(select(Widget).where(Widget.agent_id == agent.id))
        if widget is None:
            widget = Widget(client_id=client_id, agent_id=agent.id)
            session.add(widget)
            await session.flush()
    return widget


# ---- data collection ------------------------------------------------------------------------------

async def list_data_collection(db: Database, client_id: str, agent_id: str) -> list[DataCollection] | None:
    """The agent's data-collection parameters, oldest first; None when the agent is not the client's."""
    async with db.session() as session:
        if await owned(session, Agent, client_id, agent_id) is None:
            return None
        query = (select(DataCollection).where(DataCollection.agent_id == agent_id)
                 .order_by(DataCollection.created_at, DataCollection.id))
        return list((await session.scalars(query)).all())


async def create_data_collection(
    db: Database, client_id: str, agent_id: str, fields: Mapping[str, Any]
) -> DataCollection | None:
    """A new parameter for the client's agent (None when not theirs); DuplicateKey when its key is taken."""
    async with db.session() as session:
        if await owned(session, Agent, client_id, agent_id) is None:
            return None
        key = fields["key"]
        taken = await session.scalar(
            select(DataCollection.id).where(DataCollection.agent_id == agent_id, DataCollection.key == key))
        if taken is not None:
            raise DuplicateKey(key)
        row = DataCollection(client_id=client_id, agent_id=agent_id, **fields)
        session.add(row)
        await session.flush()
    return row


# ---- media handlers -------------------------------------------------------------------------------

async def list_media_handlers(db: Database, client_id: str, agent_id: str) -> list[MediaHandler] | None:
    """The agent's media handlers, oldest first; None when the agent is not the client's."""
    async with db.session() as session:
        if await owned(session, Agent, client_id, agent_id) is None:
            return None
        query = (select(MediaHandler).where(MediaHandler.agent_id == agent_id)
                 .order_by(MediaHandler.created_at, MediaHandler.id))
        return list((await session.scalars(query)).all())


async def create_media_handler(
    db: Database, client_id: str, agent_id: str, fields: Mapping[str, Any]
) -> MediaHandler | None:
    """A new media handler for the client's agent; None when the agent is not theirs."""
    async with db.session() as session:
        if await owned(session, Agent, client_id, agent_id) is None:
            return None
        row = MediaHandler(client_id=client_id, agent_id=agent_id, **fields)
        session.add(row)
        await session.flush()
    return row
