"""Tools (`/tools`) and their attachment to agents (`/assistant/{id}/tools`).

A tool's meaning (defaults, `{{param}}` placeholders, presets) is checked by `presets.validation`, the same
code the agent runtime relies on; its `ToolValidationError(field, …)` becomes VALIDATION_ERROR naming the field.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource, api_error
from control_api.routes.agents import AGENT_404, owned_agent
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
from control_api.storage import tools as tool_store
from control_api.storage.models import Tool
from control_api.storage.owned import delete_owned, get_owned, list_owned
from presets.validation import ToolValidationError, validate_tool, validate_tool_patch

api = Resource("Tools")

TOOL_404 = ("TOOL_NOT_FOUND", "Tool not found")


def _validated(validate: Callable[..., dict[str, Any]], *args: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate(*args)
    except ToolValidationError as exc:
        raise api_error("VALIDATION_ERROR", f"{exc.field}: {exc.message}") from None


def _out(tool: Tool) -> ToolOut:
    return ToolOut.model_validate(tool, from_attributes=True)


@api.get("/tools", response=ToolList)
async def list_tools(ctx: Ctx) -> ToolList:
    """List your tools."""
    rows = await list_owned(ctx.db, Tool, ctx.client_id)
    return ToolList(tools=[_out(t) for t in rows], total=len(rows))


@api.get("/tools/{id}", response=ToolOut, errors=("TOOL_NOT_FOUND",))
async def get_tool(ctx: Ctx) -> ToolOut:
    """Get one tool."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    return _out(or_404(await get_owned(ctx.db, Tool, ctx.client_id, tool_id), *TOOL_404))


@api.post("/tools", body=ToolCreate, response=ToolOut)
async def create_tool(ctx: Ctx) -> ToolOut:
    """Create a server tool (HTTP webhook) or a client tool (custom, or a preset via client_fields.preset_id).

    Defaults: execution_mode blocking for server tools and fire_and_forget for client tools (a preset's own
    mode for presets), channels [voice_web, voice_telephony], ref_code derived from the name.
    """
    normalised = _validated(validate_tool, ctx.body.model_dump(exclude_unset=True))
    return _out(await tool_store.create_tool(ctx.db, ctx.client_id, normalised))


@api.patch("/tools/{id}", body=ToolUpdate, response=ToolOut, errors=("TOOL_NOT_FOUND",))
async def update_tool(ctx: Ctx) -> ToolOut:
    """Update a tool: fields sent replace the stored ones (`request` as a whole); parameters stay unless re-sent."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    patch = ctx.body.model_dump(exclude_unset=True)

    def revise(stored: dict[str, Any]) -> dict[str, Any]:
        return _validated(validate_tool_patch, stored, patch)

    return _out(or_404(await tool_store.revise_tool(ctx.db, ctx.client_id, tool_id, revise), *TOOL_404))


@api.delete("/tools/{id}", response=ToolDeleted, errors=("TOOL_NOT_FOUND",))
async def delete_tool(ctx: Ctx) -> ToolDeleted:
    """Delete a tool; it is detached from every agent."""
    tool_id = ctx.uuid("id", TOOL_404[0])
    tool = or_404(await delete_owned(ctx.db, Tool, ctx.client_id, tool_id), *TOOL_404)
    return ToolDeleted(success=True, id=tool.id)


# ---- attachments ----------------------------------------------------------------------------------

@api.get("/assistant/{id}/tools", response=AgentToolList, errors=("AGENT_NOT_FOUND",))
async def list_agent_tools(ctx: Ctx) -> AgentToolList:
    """List the tools attached to an agent; each item's `id` is the attachment (detach with it)."""
    rows = or_404(await tool_store.attachments(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404)
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
        agent = await owned_agent(ctx)
        tool = or_404(await get_owned(ctx.db, Tool, ctx.client_id, parse_uuid(ctx.body.tool_id)), *TOOL_404)
        try:
            link = await tool_store.attach(ctx.db, ctx.client_id, agent.id, tool.id)
        except tool_store.AttachRaced:
            continue
        return AgentToolAttached(id=link.id, is_active=link.is_active)
    raise api_error("CONFLICT", "The tool is being attached concurrently; try again")


@api.delete("/assistant/{id}/tools/{agent_tool_id}", response=ToolDeleted, errors=("AGENT_NOT_FOUND", "TOOL_NOT_FOUND"))
async def detach_tool(ctx: Ctx) -> ToolDeleted:
    """Detach a tool from an agent, by the attachment id from GET /assistant/{id}/tools (not the tool id)."""
    link_id = ctx.uuid("agent_tool_id", TOOL_404[0])
    agent = await owned_agent(ctx)
    if await tool_store.detach(ctx.db, ctx.client_id, agent.id, link_id) is None:
        raise api_error("TOOL_NOT_FOUND", "No such tool attachment on this agent")
    return ToolDeleted(success=True, id=link_id)


routes = api.routes
