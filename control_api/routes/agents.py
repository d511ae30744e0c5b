"""Agents (`/assistant`), each agent's widget, data-collection parameters and media handlers.

`model`, `voice` and `transcription` must name an entry of the active provider catalog (the one the
discovery endpoints list), and so must the `fallback` each may name; omitted, they default to the catalog's
defaults (the embedded local stack).
"""
from __future__ import annotations

from typing import Any

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource, api_error
from control_api.schemas.agents import (
    AgentCreate,
    AgentCreated,
    AgentDeleted,
    AgentDetail,
    AgentList,
    AgentSummary,
    AgentUpdate,
    AgentUpdated,
    DataCollectionCreate,
    DataCollectionCreated,
    DataCollectionList,
    DataCollectionOut,
    DataCollectionUpdate,
    DataCollectionUpdated,
    MediaHandlerCreate,
    MediaHandlerCreated,
    MediaHandlerList,
    MediaHandlerOut,
    MediaHandlerUpdate,
    MediaHandlerUpdated,
    Success,
    WidgetOut,
    WidgetUpdate,
    WidgetUpdated,
)
from control_api.schemas.common import SuccessId
from control_api.storage import agents as agent_store
from control_api.storage.models import Agent, DataCollection, MediaHandler, Widget
from control_api.storage.owned import delete_owned, update_owned

api = Resource("Agents")

AGENT_404 = ("AGENT_NOT_FOUND", "Agent not found")
# Columns that cannot hold null: an explicit null in a body means "leave as is" (PATCH) or "default" (POST).
NOT_NULL = {
    "name", "active", "language", "model", "voice", "transcription", "welcome_message", "agent_prompt",
    "initial_disable_mic_duration", "enable_lid_detection", "lid_allowed_languages",
}
# field -> (registry kind, name key, discovery endpoint for the error message)
CHOICES = {
    "model": ("llm", "model", "/discovery/models"),
    "voice": ("tts", "name", "/discovery/voices"),
    "transcription": ("stt", "model", "/discovery/transcription-models"),
}


def _validate_choices(ctx: Ctx, data: dict[str, Any], *, fill_defaults: bool) -> None:
    """Check model/voice/transcription and their fallbacks against the provider catalog; fill the catalog's
    defaults if asked."""
    registry = ctx.runtime.providers
    for field, (kind, key, endpoint) in CHOICES.items():
        choice = data.get(field)
        if choice is None:
            default = registry.defaults.get(kind)
            if fill_defaults and default is not None:
                data[field] = {"provider": default[0], key: default[1]}
            continue
        for name, named in ((field, choice), (f"{field}.fallback", choice.get("fallback"))):
            if named is not None and not registry.has(kind, named["provider"], named[key]):
                raise api_error(
                    "VALIDATION_ERROR",
                    f"{name}: {named['provider']}/{named[key]} is not an active {field} here; see GET {endpoint}",
                )


def _columns(body: AgentCreate | AgentUpdate) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    return {k: v for k, v in data.items() if v is not None or k not in NOT_NULL}


def _choice(stored: dict[str, Any], key: str) -> dict[str, Any]:
    """A stored `{provider, <key>}` choice as returned, with its `fallback` when it names one."""
    choice: dict[str, Any] = {"provider": stored.get("provider", ""), key: stored.get(key, "")}
    fallback = stored.get("fallback")
    if isinstance(fallback, dict):
        choice["fallback"] = {"provider": fallback.get("provider", ""), key: fallback.get(key, "")}
    return choice


def _summary(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "active": agent.active,
        "language": agent.language,
        "model": _choice(agent.model, "model"),
        "voice": _choice(agent.voice, "name"),
        "transcription": _choice(agent.transcription, "model"),
        "enable_lid_detection": agent.enable_lid_detection,
        "lid_allowed_languages": list(agent.lid_allowed_languages or []),
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
        "client_id": agent.client_id,
    }


def _detail(agent: Agent) -> AgentDetail:
    extra = {name: getattr(agent, name) for name in AgentDetail.model_fields if name not in AgentSummary.model_fields}
    return AgentDetail(**_summary(agent), **extra)


async def owned_agent(ctx: Ctx) -> Agent:
    """The caller's agent from the `id` path parameter, else 404 AGENT_NOT_FOUND."""
    return or_404(await agent_store.get_agent(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404)


# ---- agents ---------------------------------------------------------------------------------------

@api.get("/assistant", response=AgentList)
async def list_agents(ctx: Ctx) -> AgentList:
    """List your agents."""
    rows = await agent_store.list_agents(ctx.db, ctx.client_id)
    return AgentList(agents=[AgentSummary(**_summary(a)) for a in rows])


@api.get("/assistant/{id}", response=AgentDetail, errors=("AGENT_NOT_FOUND",))
async def get_agent(ctx: Ctx) -> AgentDetail:
    """Get one agent with its full configuration."""
    return _detail(await owned_agent(ctx))


@api.post("/assistant", body=AgentCreate, response=AgentCreated, database_error="PERSISTENCE_ERROR")
async def create_agent(ctx: Ctx) -> AgentCreated:
    """Create an agent.

    Omitted model/voice/transcription take the catalog's defaults (see the discovery endpoints).
    """
    data = _columns(ctx.body)
    _validate_choices(ctx, data, fill_defaults=True)
    agent = await agent_store.create_agent(ctx.db, ctx.client_id, data)
    return AgentCreated(id=agent.id, name=agent.name, client_id=agent.client_id, created_at=agent.created_at)


@api.patch("/assistant/{id}", body=AgentUpdate, response=AgentUpdated, errors=("AGENT_NOT_FOUND",))
async def update_agent(ctx: Ctx) -> AgentUpdated:
    """Update an agent: only the fields sent change; null resets temperature, speed and the like."""
    data = _columns(ctx.body)
    _validate_choices(ctx, data, fill_defaults=False)
    agent = or_404(await update_owned(ctx.db, Agent, ctx.client_id, ctx.uuid("id"), data), *AGENT_404)
    return AgentUpdated(id=agent.id, name=agent.name, active=agent.active, updated_at=agent.updated_at)


@api.delete("/assistant/{id}", response=AgentDeleted, errors=("AGENT_NOT_FOUND",))
async def delete_agent(ctx: Ctx) -> AgentDeleted:
    """Delete an agent: it is gone from the API and takes no more calls; its calls stay readable."""
    agent = or_404(await agent_store.delete_agent(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404)
    return AgentDeleted(id=agent.id, name=agent.name)


# ---- widget ---------------------------------------------------------------------------------------

def _widget(widget: Widget) -> WidgetOut:
    return WidgetOut.model_validate(widget, from_attributes=True)


@api.get("/assistant/{id}/widget", response=WidgetOut, errors=("AGENT_NOT_FOUND",))
async def get_widget(ctx: Ctx) -> WidgetOut:
    """Get the agent's embeddable widget settings (created with default colours on first use)."""
    return _widget(or_404(await agent_store.agent_widget(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404))


@api.patch("/assistant/widget/{widget_id}", body=WidgetUpdate, response=WidgetUpdated, errors=("WIDGET_NOT_FOUND",))
async def update_widget(ctx: Ctx) -> WidgetUpdated:
    """Update a widget's mode, colours or icon."""
    widget_id = ctx.uuid("widget_id", "WIDGET_NOT_FOUND")
    data = {k: v for k, v in ctx.body.model_dump(exclude_unset=True).items() if v is not None or k == "icon"}
    widget = or_404(await update_owned(ctx.db, Widget, ctx.client_id, widget_id, data),
                    "WIDGET_NOT_FOUND", "Widget not found")
    return WidgetUpdated.model_validate(widget, from_attributes=True)


# ---- data collection ------------------------------------------------------------------------------

DC_404 = ("DATA_COLLECTION_NOT_FOUND", "Data-collection parameter not found")


def _check_enum(data_type: str, enum_values: list[str] | None) -> None:
    if data_type == "enum" and not enum_values:
        raise api_error("BAD_REQUEST", 'Invalid configuration: enum_values is required when data_type is "enum"')


def _check_collection(row: DataCollection) -> None:
    _check_enum(row.data_type, row.enum_values)


@api.get("/assistant/{id}/data-collection", response=DataCollectionList, errors=("AGENT_NOT_FOUND",))
async def list_data_collection(ctx: Ctx) -> DataCollectionList:
    """List the values the agent extracts from each call."""
    rows = or_404(await agent_store.list_data_collection(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404)
    return DataCollectionList(collections=[DataCollectionOut.model_validate(r, from_attributes=True) for r in rows])


@api.post(
    "/assistant/{id}/data-collection",
    body=DataCollectionCreate,
    response=DataCollectionCreated,
    errors=("AGENT_NOT_FOUND", "BAD_REQUEST", "CONFLICT"),
)
async def create_data_collection(ctx: Ctx) -> DataCollectionCreated:
    """Add a value for the agent to extract after each call (its `key` is unique per agent)."""
    body: DataCollectionCreate = ctx.body
    _check_enum(body.data_type, body.enum_values)
    try:
        row = await agent_store.create_data_collection(ctx.db, ctx.client_id, ctx.uuid("id"), body.model_dump())
    except agent_store.DuplicateKey:
        raise api_error("CONFLICT", f"This agent already extracts a value with key {body.key!r}") from None
    return DataCollectionCreated.model_validate(or_404(row, *AGENT_404), from_attributes=True)


@api.patch(
    "/assistant/data-collection/{collection_id}",
    body=DataCollectionUpdate,
    response=DataCollectionUpdated,
    errors=("DATA_COLLECTION_NOT_FOUND", "BAD_REQUEST"),
)
async def update_data_collection(ctx: Ctx) -> DataCollectionUpdated:
    """Update a data-collection parameter."""
    collection_id = ctx.uuid("collection_id", DC_404[0])
    data = ctx.body.model_dump(exclude_unset=True)
    nullable = {"enum_values", "prospect_column_name", "prospect_data_key"}
    data = {k: v for k, v in data.items() if v is not None or k in nullable}
    row = await update_owned(ctx.db, DataCollection, ctx.client_id, collection_id, data, check=_check_collection)
    return DataCollectionUpdated.model_validate(or_404(row, *DC_404), from_attributes=True)


@api.delete("/assistant/data-collection/{collection_id}", response=SuccessId, errors=("DATA_COLLECTION_NOT_FOUND",))
async def delete_data_collection(ctx: Ctx) -> SuccessId:
    """Delete a data-collection parameter."""
    collection_id = ctx.uuid("collection_id", DC_404[0])
    row = or_404(await delete_owned(ctx.db, DataCollection, ctx.client_id, collection_id), *DC_404)
    return SuccessId(success=True, id=row.id)


# ---- media handlers -------------------------------------------------------------------------------

MH_404 = ("MEDIA_HANDLER_NOT_FOUND", "Media handler not found")


def _check_handler(route: str, webhook_url: str | None) -> None:
    if route == "webhook" and not webhook_url:
        raise api_error("BAD_REQUEST", 'Invalid handler configuration: webhook_url is required when route is "webhook"')


def _check_stored_handler(row: MediaHandler) -> None:
    _check_handler(row.route, row.webhook_url)


@api.get("/assistant/{id}/media-handlers", response=MediaHandlerList, errors=("AGENT_NOT_FOUND",))
async def list_media_handlers(ctx: Ctx) -> MediaHandlerList:
    """List how the agent handles media the client uploads, by `reason`."""
    rows = or_404(await agent_store.list_media_handlers(ctx.db, ctx.client_id, ctx.uuid("id")), *AGENT_404)
    return MediaHandlerList(handlers=[MediaHandlerOut.model_validate(r, from_attributes=True) for r in rows])


@api.post(
    "/assistant/{id}/media-handlers",
    body=MediaHandlerCreate,
    response=MediaHandlerCreated,
    errors=("AGENT_NOT_FOUND", "BAD_REQUEST"),
)
async def create_media_handler(ctx: Ctx) -> MediaHandlerCreated:
    """Route uploads with a given `reason` to the LLM's vision or to your webhook."""
    body: MediaHandlerCreate = ctx.body
    _check_handler(body.route, body.webhook_url)
    row = await agent_store.create_media_handler(ctx.db, ctx.client_id, ctx.uuid("id"), body.model_dump())
    return MediaHandlerCreated.model_validate(or_404(row, *AGENT_404), from_attributes=True)


@api.patch(
    "/assistant/media-handlers/{id}",
    body=MediaHandlerUpdate,
    response=MediaHandlerUpdated,
    errors=("MEDIA_HANDLER_NOT_FOUND", "BAD_REQUEST"),
)
async def update_media_handler(ctx: Ctx) -> MediaHandlerUpdated:
    """Update a media handler."""
    handler_id = ctx.uuid("id", MH_404[0])
    data = ctx.body.model_dump(exclude_unset=True)
    data = {k: v for k, v in data.items() if v is not None or k in ("webhook_url", "webhook_headers")}
    row = await update_owned(ctx.db, MediaHandler, ctx.client_id, handler_id, data, check=_check_stored_handler)
    return MediaHandlerUpdated.model_validate(or_404(row, *MH_404), from_attributes=True)


@api.delete("/assistant/media-handlers/{id}", response=Success, errors=("MEDIA_HANDLER_NOT_FOUND",))
async def delete_media_handler(ctx: Ctx) -> Success:
    """Delete a media handler."""
    handler_id = ctx.uuid("id", MH_404[0])
    or_404(await delete_owned(ctx.db, MediaHandler, ctx.client_id, handler_id), *MH_404)
    return Success(success=True)


routes = api.routes
