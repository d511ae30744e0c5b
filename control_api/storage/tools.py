"""Tools and their attachment to agents (`agent_tools`).

A tool's stored form is its columns in `COLUMNS`; `presets.validation` normalises them before they get here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control_api.storage import Database
from control_api.storage.models import Agent, AgentTool, Tool, utcnow
from control_api.storage.owned import owned

COLUMNS = ("name", "description", "ref_code", "type", "execution_mode", "channels", "parameters", "server",
           "request", "client_fields", "timeout_seconds")
Revise = Callable[[dict[str, Any]], Mapping[str, Any]]


class AttachRaced(Exception):
    """A concurrent attach of the same tool to the same agent stored its attachment first."""


def stored_fields(tool: Tool) -> dict[str, Any]:
    """The tool as `presets.validation` sees it (only the fields its kind uses)."""
    data = {name: getattr(tool, name) for name in COLUMNS}
    return {k: v for k, v in data.items() if v is not None}


def _apply(tool: Tool, normalised: Mapping[str, Any]) -> None:
    for name in COLUMNS:
        setattr(tool, name, normalised.get(name))


async def create_tool(db: Database, client_id: str, normalised: Mapping[str, Any]) -> Tool:
    async with db.session() as session:
        tool = Tool(client_id=client_id)
        _apply(tool, normalised)
        session.add(tool)
        await session.flush()
    return tool


async def revise_tool(db: Database, client_id: str, tool_id: str, revise: Revise) -> Tool | None:
    """Replace the client's tool with `revise(its stored fields)`; None when it is not theirs.

    `revise` runs inside the transaction (it may raise to leave the tool as it was)."""
    async with db.session() as session:
        tool = await owned(session, Tool, client_id, tool_id)
        if tool is None:
            return None
        _apply(tool, revise(stored_fields(tool)))
        tool.updated_at = utcnow()
    return tool


# ---- attachments ----------------------------------------------------------------------------------

async def attachments(db: Database, client_id: str, agent_id: str) -> list[tuple[AgentTool, Tool]] | None:
    """The client's agent's attachments with their tools, oldest first; None when the agent is not theirs."""
    query = (select(AgentTool, Tool).join(Tool, Tool.id == AgentTool.tool_id)
             .where(AgentTool.agent_id == agent_id).order_by(AgentTool.created_at, AgentTool.id))
    async with db.session() as session:
        if await owned(session, Agent, client_id, agent_id) is None:
            return None
        return [(link, tool) for link, tool in (await session.execute(query)).all()]


async def attach(db: Database, client_id: str, agent_id: str, tool_id: str) -> AgentTool:
    """The attachment of the tool to the agent, made unless it exists (the caller checks both are the client's).

    Raises AttachRaced when a concurrent attach of the same tool made it first (reading again finds it)."""
    try:
        async with db.session() as session:
            link = await session.scalar(
                select(AgentTool).where(AgentTool.agent_id == agent_id, AgentTool.tool_id == tool_id))
            if link is None:
                link = AgentTool(client_id=client_id, agent_id=agent_id, tool_id=tool_id)
                session.add(link)
                await session.flush()
    except IntegrityError:
        raise AttachRaced(tool_id) from None
    return link


async def detach(db: Database, client_id: str, agent_id: str, link_id: str) -> AgentTool | None:
    """Delete the attachment `link_id` of the client's agent; None when there is no such attachment on it."""
    async with db.session() as session:
        link = await owned(session, AgentTool, client_id, link_id)
        if link is None or link.agent_id != agent_id:
            return None
        await session.delete(link)
    return link
