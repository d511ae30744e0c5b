"""Tools (`/tools`) and their attachment to agents (`/assistant/{id}/tools`).

These models check shapes and types only; the meaning of a tool (defaults, `{{param}}` placeholders,
presets) is `presets.validation.validate_tool`'s job, so the API and the agent runtime agree on it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from control_api.schemas.common import RequestModel, ResponseModel
from presets.validation import _PARAM_NAME as PARAM_NAME  # the document states the rule validate_tool applies
from presets.validation import PARAMETER_TYPES

Channel = Literal["voice_web", "voice_telephony", "chat", "whatsapp"]


class ToolParameter(RequestModel):
    model_config = ConfigDict(json_schema_extra={"allOf": [  # the document says what validate_tool checks
        {"if": {"properties": {"type": {"const": "array"}}, "required": ["type"]},
         "else": {"properties": {"items": {"type": "null"}}}},
        {"if": {"anyOf": [{"properties": {"type": {"enum": ["string", "enum"]}}, "required": ["type"]},
                          {"not": {"required": ["type"]}}]},
         "then": {"properties": {"enum": {"items": {"type": "string"}}}}},
    ]})

    name: str = Field(min_length=1, max_length=64, json_schema_extra={"pattern": PARAM_NAME.pattern})
    type: str = Field(default="string", max_length=32, examples=["string"],
                      json_schema_extra={"enum": list(PARAMETER_TYPES)})
    description: str | None = Field(default=None, max_length=2_000)
    required: bool = False
    enum: Annotated[list[Any], WithJsonSchema({  # what validate_tool accepts
        "type": "array", "minItems": 1, "maxItems": 200, "items": {"type": ["string", "number"]}})] | None = None
    items: dict[str, Any] | None = Field(default=None, description="JSON schema of an array parameter's items")


class ServerConfig(RequestModel):
    url: str = Field(min_length=1, max_length=2_000, examples=["https://api.acme.com/orders"])
    method: Literal["POST", "GET", "PUT", "PATCH", "DELETE"] = "POST"


class RequestMapping(RequestModel):
    body: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None
    query: dict[str, Any] | None = None


class _ToolFields(RequestModel):
    ref_code: str | None = Field(default=None, min_length=1, max_length=200)
    execution_mode: Literal["blocking", "fire_and_forget"] | None = None
    channels: Annotated[list[Channel], Field(min_length=1, max_length=4)] | None = None
    server: ServerConfig | None = None
    request: RequestMapping | None = None
    client_fields: dict[str, Any] | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=600, description="How long to wait for the result")


class ToolCreate(_ToolFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "check_order_status", "description": "Check the status of a customer order by order ID",
        "type": "server", "execution_mode": "blocking", "channels": ["voice_web", "voice_telephony"],
        "parameters": [{"name": "order_id", "type": "string", "description": "Order ID to check", "required": True}],
        "server": {"url": "https://api.acme.com/orders", "method": "POST"},
        "request": {"body": {"order_id": "{{order_id}}", "source": "talkwire"}, "headers": {"X-API-Key": "sk-abc"}},
    }],  # a server tool names its server
        "if": {"properties": {"type": {"const": "server"}}, "required": ["type"]},
        "then": {"required": ["server"], "properties": {"server": {"type": "object"}}},
    })

    name: str = Field(min_length=1, max_length=64, examples=["check_order_status"])
    description: str = Field(min_length=1, max_length=4_000)
    type: Literal["server", "client"]
    parameters: list[ToolParameter] = Field(default_factory=list, max_length=64)


class ToolUpdate(_ToolFields):
    # Absent: unchanged. Not nullable: the tool always has a name, a description and a type.
    name: str = Field(default=None, min_length=1, max_length=64)  # type: ignore[assignment]
    description: str = Field(default=None, min_length=1, max_length=4_000)  # type: ignore[assignment]
    type: Literal["server", "client"] = None  # type: ignore[assignment]
    parameters: list[ToolParameter] | None = Field(default=None, max_length=64)


class ServerOut(ResponseModel):
    url: str
    method: str


class ToolOut(ResponseModel):
    id: str
    name: str
    description: str
    ref_code: str
    type: str
    execution_mode: str
    channels: list[str]
    parameters: list[dict[str, Any]]
    server: ServerOut | None
    request: dict[str, Any] | None
    client_fields: dict[str, Any] | None
    timeout_seconds: float | None
    created_at: datetime
    updated_at: datetime


class ToolList(ResponseModel):
    tools: list[ToolOut]
    total: int


class ToolDeleted(ResponseModel):
    success: bool
    id: str


class AgentToolAttach(RequestModel):
    tool_id: str = Field(min_length=1, max_length=64, examples=["e2705199-b431-4091-ad7c-ca1110b8e025"])


class AgentToolAttached(ResponseModel):
    id: str
    is_active: bool


class AgentToolOut(ResponseModel):
    """One attachment: `id` is the attachment (detach with it), `tool_id` the tool it points at."""

    id: str
    tool_id: str
    is_active: bool
    name: str
    description: str
    ref_code: str
    type: str
    execution_mode: str
    channels: list[str]
    parameters: list[dict[str, Any]]
    server: ServerOut | None
    request: dict[str, Any] | None
    client_fields: dict[str, Any] | None
    timeout_seconds: float | None


class AgentToolList(ResponseModel):
    tools: list[AgentToolOut]
    total: int
