"""Calls: `POST /calls/create`, `GET /calls`, `GET /calls/{id}`."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from control_api.schemas.common import E164, RequestModel, ResponseModel

CallStatus = Literal["triggered", "in-progress", "completed", "failed"]


class SipData(RequestModel):
    to: E164 | None = None
    name: str | None = Field(default=None, max_length=200)
    from_number: E164 | None = None
    ring_timeout_seconds: float | None = Field(
        default=None, gt=0, le=600,
        description="Seconds to let the phone ring before giving up (CANCEL, outcome no_answer); "
                    "default TALKWIRE_SIP_RING_TIMEOUT.")


class CallCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"agent_id": "919801d9-f357-4033-8ea0-97de12a989c2", "type": "web"}],
        # the document says what the handler checks: a SIP call names the number to call
        "if": {"properties": {"type": {"const": "sip"}}, "required": ["type"]},
        "then": {"required": ["sip_data"],
                 "properties": {"sip_data": {"type": "object", "required": ["to"],
                                             "properties": {"to": {"type": "string"}}}}},
    })

    agent_id: str = Field(min_length=1, max_length=64)
    type: Literal["web", "sip"]
    sip_data: SipData | None = None
    prospect_id: str | None = Field(default=None, max_length=64)
    call_id: str | None = Field(
        default=None,
        max_length=64,
        description="An earlier web call of yours that this session continues (the SDK's sessionBehavior: 'continue').",
    )


class CallCreated(ResponseModel):
    call_id: str
    status: str
    worker_url: str | None
    # Not in the seed's example: the SDK keeps it for session continuity (`vanira_prospect_id`).
    prospect_id: str | None = None


class CallListQuery(RequestModel):
    agent_id: Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})] | None = Field(
        default=None, max_length=64)
    status: CallStatus | None = None
    campaign_id: Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})] | None = Field(
        default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class ProspectRef(ResponseModel):
    id: str
    name: str
    phone: str | None


class AgentRef(ResponseModel):
    id: str
    name: str


class KeyValue(ResponseModel):
    key: str
    value: Any


class CallSummary(ResponseModel):
    id: str
    agent_id: str
    client_id: str
    phone_to: str | None
    phone_from: str | None
    status: str
    direction: str
    type: str
    created_at: datetime
    duration: float | None
    recording_url: str | None
    is_call_successful_according_to_agent_criteria: bool | None
    prospect: ProspectRef | None
    agent: AgentRef
    call_data: list[dict[str, Any]]


class CallList(ResponseModel):
    calls: list[CallSummary]
    total: int


class ProspectDetail(ProspectRef):
    prospect_data: list[KeyValue]


class ClientRef(ResponseModel):
    name: str
    base_prospect_group_id: str | None


class AgentWithClient(ResponseModel):
    id: str
    name: str
    client: ClientRef


class TranscriptTurn(ResponseModel):
    role: str
    text: str
    at: datetime


class TimelineEvent(ResponseModel):
    seq: int
    kind: str
    at: datetime
    data: dict[str, Any]


class CallDetail(ResponseModel):
    id: str
    agent_id: str
    client_id: str
    phone_from: str | None
    phone_to: str | None
    status: str
    direction: str
    type: str
    call_triggered_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration: float | None
    end_reason: str | None
    extra_details: dict[str, Any]
    provider_call_id: str | None
    continues_call_id: str | None
    is_call_successful_according_to_agent_criteria: bool | None
    call_data: list[dict[str, Any]]
    recording_url: str | None
    prospect: ProspectDetail | None
    agent: AgentWithClient
    transcript: list[TranscriptTurn]
    timeline: list[TimelineEvent]
    created_at: datetime
