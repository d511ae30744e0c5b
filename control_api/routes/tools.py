"""Tools (`/tools`) and their attachment to agents (`/assistant/{id}/tools`).

A tool's meaning (defaults, `{{param}}` placeholders, presets) is checked by `presets.validation`, the same
code the agent runtime relies on; its `ToolValidationError(field, …)` becomes VALIDATION_ERROR naming the field.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control_api.auth import get_owned
from control_api.openapi import Ctx, Resource, api_error
from control_api.routes.agents import owned_agent
from control_api.schemas.common import parse_uuid
from control_api.schemas.tools import (
    AgentToolAttach,
    AgentToolAttached,
    AgentToolList,
    AgentToolOut,
    ToolCreate,
    ToolDeleted,
    ToolList,
    ToolOut,
    ToolUpdate,
)
from control_api.storage.models import AgentTool, Tool, utcnow
from presets.validation import ToolValidationError, validate_tool, validate_tool_patch

api = Resource("Tools")

TOOL_404 = ("TOOL_NOT_FOUND", "Tool not found")
COLUMNS = ("name", "description", "ref_code", "type", "execution_mode", "channels", "parameters", "server",
           "request", "client_fields", "timeout_seconds")


def _validated(validate: Any, *args: Any) -> dict[str, Any]:
    try:
        return validate(*args)
    except ToolValidationError as exc:
        raise api_error("VALIDATION_ERROR", f"{exc.field}: {exc.message}") from None


def _stored(tool: Tool) -> dict[str, Any]:
    """The tool as `presets.validation` sees it (only the fields its kind uses)."""
    data = {name: getattr(tool, name) for name in COLUMNS}
    return {k: v for k, v in data.items() if v is not None}


def _apply(tool: Tool, normalised: dict[str, Any]) -> None:
    for name in COLUMNS:
        setattr(tool, name, normalised.get(name))


def _out(tool: Tool) -> ToolOut:
    return ToolOut.model_validate(tool, from_attributes=True)


@api.get("/tools", response=ToolList)
async def list_tools(ctx: Ctx) -> ToolList:
    """List your tools."""
    async with ctx.db.session() as session:
        rows = (await session.scalars(
            select(Tool).where(Tool.client_id == ctx.client_id).order_by(Tool.created_at, Tool.id)
        )).all()
    return ToolList(tools=[_out(t) for t in rows], total=len(rows))


@api.get("/tools/{id}", response=ToolOut, errors=("TOOL_NOT_FOUND",))
async def get_tool(ctx: Ctx) -> ToolOut:
    """Get one tool."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    async with ctx.db.session() as session:
        tool = await get_owned(session, Tool, tool_id, ctx.principal, *TOOL_404)
    return _out(tool)


@api.post("/tools", body=ToolCreate, response=ToolOut)
async def create_tool(ctx: Ctx) -> ToolOut:
    """Create a server tool (HTTP webhook) or a client tool (custom, or a preset via client_fields.preset_id).

    Defaults: execution_mode blocking for server tools and fire_and_forget for client tools (a preset's own
    mode for presets), channels [voice_web, voice_telephony], ref_code derived from the name.
    """
    normalised = _validated(validate_tool, ctx.body.model_dump(exclude_unset=True))
    async with ctx.db.session() as session:
        tool = Tool(client_id=ctx.client_id)
        _apply(tool, normalised)
        session.add(tool)
        await session.flush()
    return _out(tool)


@api.patch("/tools/{id}", body=ToolUpdate, response=ToolOut, errors=("TOOL_NOT_FOUND",))
async def update_tool(ctx: Ctx) -> ToolOut:
    """Update a tool: fields sent replace the stored ones (`request` as a whole); parameters stay unless re-sent."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    patch = ctx.body.model_dump(exclude_unset=True)
    async with ctx.db.session() as session:
        tool = await get_owned(session, Tool, tool_id, ctx.principal, *TOOL_404)
        _apply(tool, _validated(validate_tool_patch, _stored(tool), patch))
        tool.updated_at = utcnow()
    return _out(tool)


@api.delete("/tools/{id}", response=ToolDeleted, errors=("TOOL_NOT_FOUND",))
async def delete_tool(ctx: Ctx) -> ToolDeleted:
    """Delete a tool; it is detached from every agent."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    async with ctx.db.session() as session:
        tool = await get_owned(session, Tool, tool_id, ctx.principal, *TOOL_404)
        await session.delete(tool)
    return ToolDeleted(success=True, id=tool.id)


# ---- attachments ----------------------------------------------------------------------------------

@api.get("/assistant/{id}/tools", response=AgentToolList, errors=("AGENT_NOT_FOUND",))
async def list_agent_tools(ctx: Ctx) -> AgentToolList:
    """List the tools attached to an agent; each item's `id` is the attachment (detach with it)."""
    async with ctx.db.session() as session:
        agent = await owned_agent(ctx, session)
        rows = (await session.execute(
            select(AgentTool, Tool).join(Tool, Tool.id == AgentTool.tool_id)
            .where(AgentTool.agent_id == agent.id).order_by(AgentTool.created_at, AgentTool.id)
        )).all()
    items = [
        AgentToolOut(id=link.id, tool_id=tool.id, is_active=link.is_active,
                     **_out(tool).model_dump(include=set(AgentToolOut.model_fields) - {"id", "tool_id", "is_active"}))
        for link, tool in rows
    ]
    return AgentToolList(tools=items, total=len(items))


@api.post("/assistant/{id}/tools", body=AgentToolAttach, response=AgentToolAttached,
          errors=("AGENT_NOT_FOUND", "TOOL_NOT_FOUND", "CONFLICT"))
async def attach_tool(ctx: Ctx) -> AgentToolAttached:
    """Attach one of your tools to an agent. Attaching an attached tool returns the existing attachment."""
    for _attempt in range(2):  # a concurrent attach of the same tool wins the unique key: read its row
        try:
            async with ctx.db.session() as session:
                agent = await owned_agent(ctx, session)
                tool = await get_owned(session, Tool, parse_uuid(ctx.body.tool_id), ctx.principal, *TOOL_404)
                link = await session.scalar(
                    select(AgentTool).where(AgentTool.agent_id == agent.id, AgentTool.tool_id == tool.id)
                )
                if link is None:
                    link = AgentTool(client_id=ctx.client_id, agent_id=agent.id, tool_id=tool.id)
                    session.add(link)
                    await session.flush()
            return AgentToolAttached(id=link.id, is_active=link.is_active)
        except IntegrityError:
            continue
    raise api_error("CONFLICT", "The tool is being attached concurrently; try again")


@api.delete("/assistant/{id}/tools/{agent_tool_id}", response=ToolDeleted, errors=("AGENT_NOT_FOUND", "TOOL_NOT_FOUND"))
async def detach_tool(ctx: Ctx) -> ToolDeleted:
    """Detach a tool from an agent, by the attachment id from GET /assistant/{id}/tools (not the tool id)."""
    link_id = ctx.uuid("agent_tool_id", TOOL_404[0])
    async with ctx.db.session() as session:
        agent = await owned_agent(ctx, session)
        link = await session.get(AgentTool, link_id)
        if link is None or link.agent_id != agent.id:
            raise api_error("TOOL_NOT_FOUND", "No such tool attachment on this agent")
        await session.delete(link)
    return ToolDeleted(success=True, id=link_id)


routes = api.routes
