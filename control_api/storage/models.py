"""The whole relational schema of Talkwire's control plane (one source for the ORM and the first migration).

Every table holding tenant data carries `client_id`; ids are UUID strings so rows move between SQLite and
PostgreSQL unchanged. JSON columns hold the seed API's free-form objects as sent. Timestamps are stored
timezone-aware (UTC) and always read back as aware datetimes, on both engines.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Defaults for agents that name no provider: the embedded offline stack.
DEFAULT_MODEL = {"provider": "LOCAL", "model": "smollm2-135m-instruct"}
DEFAULT_VOICE = {"provider": "PIPER", "name": "joe"}
DEFAULT_TRANSCRIPTION = {"provider": "WHISPER", "model": "tiny.en"}
DEFAULT_CHANNELS = ["voice_web", "voice_telephony"]


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """DateTime that is always timezone-aware UTC in Python (SQLite drops the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def _id() -> Mapped[str]:
    return mapped_column(String(36), primary_key=True, default=new_id)


def _client() -> Mapped[str]:
    return mapped_column(String(36), ForeignKey("clients.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ApiKey(Base):
    """An API key, stored as its SHA-256. Publishable keys are public by design and keep `display_key`."""

    __tablename__ = "api_keys"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    kind: Mapped[str] = mapped_column(String(16))  # secret | publishable
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))  # display hint, e.g. "sk_live_AbCd"
    display_key: Mapped[str | None] = mapped_column(String(200))  # publishable keys only
    allowed_origins: Mapped[list[Any]] = mapped_column(default=lambda: ["*"])
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None]


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(32), default="en-US")
    model: Mapped[dict[str, Any]] = mapped_column(default=lambda: dict(DEFAULT_MODEL))
    voice: Mapped[dict[str, Any]] = mapped_column(default=lambda: dict(DEFAULT_VOICE))
    transcription: Mapped[dict[str, Any]] = mapped_column(default=lambda: dict(DEFAULT_TRANSCRIPTION))
    welcome_message: Mapped[str] = mapped_column(Text, default="")
    inbound_welcome_message: Mapped[str | None] = mapped_column(Text)
    agent_prompt: Mapped[str] = mapped_column(Text, default="")
    data_collection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    success_metric: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    input_needed_json_format: Mapped[list[Any] | None] = mapped_column(JSON)
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    duty: Mapped[str | None] = mapped_column(String(64))
    silence_alert_message: Mapped[str | None] = mapped_column(Text)
    call_end_duration: Mapped[int | None] = mapped_column(Integer)  # ms
    call_user_alert_duration: Mapped[int | None] = mapped_column(Integer)  # ms
    initial_disable_mic_duration: Mapped[int] = mapped_column(Integer, default=0)  # ms
    enable_lid_detection: Mapped[bool] = mapped_column(Boolean, default=False)
    lid_allowed_languages: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    deleted_at: Mapped[datetime | None]  # soft delete: the agent is gone, its calls stay readable


def _agent(nullable: bool = False, ondelete: str = "CASCADE") -> Mapped[Any]:
    return mapped_column(String(36), ForeignKey("agents.id", ondelete=ondelete), index=True, nullable=nullable)


class Widget(Base):
    __tablename__ = "widgets"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"), unique=True)
    mode: Mapped[str] = mapped_column(String(32), default="voice_only")
    primary_color: Mapped[str] = mapped_column(String(32), default="#6366f1")
    secondary_color: Mapped[str] = mapped_column(String(32), default="#a855f7")
    icon: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class DataCollection(Base):
    __tablename__ = "data_collections"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = _agent()
    key: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    data_type: Mapped[str] = mapped_column(String(16), default="string")  # string|boolean|number|enum
    enum_values: Mapped[list[Any] | None] = mapped_column(JSON)
    store_to_prospect: Mapped[bool] = mapped_column(Boolean, default=False)
    prospect_column_name: Mapped[str | None] = mapped_column(String(200))
    store_to_prospect_data: Mapped[bool] = mapped_column(Boolean, default=False)
    prospect_data_key: Mapped[str | None] = mapped_column(String(200))
    store_directly_to_prospect: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class MediaHandler(Base):
    __tablename__ = "media_handlers"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = _agent()
    reason: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(16))  # vision | webhook
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    inject_as: Mapped[str] = mapped_column(String(16), default="system")  # system | user
    interrupt: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Tool(Base):
    __tablename__ = "tools"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    ref_code: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))  # server | client
    execution_mode: Mapped[str] = mapped_column(String(32))  # blocking | fire_and_forget
    channels: Mapped[list[Any]] = mapped_column(default=lambda: list(DEFAULT_CHANNELS))
    parameters: Mapped[list[Any]] = mapped_column(default=list)
    server: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {url, method}
    request: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {body, headers, query}
    client_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timeout_seconds: Mapped[float | None] = mapped_column(Float)  # result timeout; None: the kind's default
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class AgentTool(Base):
    """An attachment of a tool to an agent; its own id is what the seed's detach endpoint takes."""

    __tablename__ = "agent_tools"
    __table_args__ = (UniqueConstraint("agent_id", "tool_id"),)
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = _agent()
    tool_id: Mapped[str] = mapped_column(String(36), ForeignKey("tools.id", ondelete="CASCADE"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()


class Prospect(Base):
    """A person called or calling; the seed's leads are these rows."""

    __tablename__ = "prospects"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    name: Mapped[str] = mapped_column(String(200), default="Unknown")
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    email_id: Mapped[str | None] = mapped_column(String(320))
    alternate_phone_number: Mapped[str | None] = mapped_column(String(32))
    alternate_email_id: Mapped[str | None] = mapped_column(String(320))
    lead_source: Mapped[str | None] = mapped_column(String(64))  # e.g. web_call, sip_call, campaign
    status: Mapped[str] = mapped_column(String(32), default="New")
    remarks: Mapped[str | None] = mapped_column(Text)
    prospect_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class SipTrunk(Base):
    __tablename__ = "sip_trunks"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    name: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str | None] = mapped_column(String(200))
    password: Mapped[str | None] = mapped_column(String(200))  # never returned by the API
    register: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # keep a REGISTER binding
    srtp: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # offer SRTP (SDES keys)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164; unique: inbound routing keys on it
    country_code: Mapped[str | None] = mapped_column(String(2))
    label: Mapped[str | None] = mapped_column(String(200))
    trunk_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("sip_trunks.id", ondelete="SET NULL"), index=True
    )
    agent_id: Mapped[str | None] = _agent(nullable=True, ondelete="SET NULL")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_internal: Mapped[bool] = mapped_column(Boolean, default=False)  # seed: is_vanira_internal
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = _agent()
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft|scheduled|active|paused|completed
    provider: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    call_hours_start: Mapped[str] = mapped_column(String(8), default="09:00:00")
    call_hours_end: Mapped[str] = mapped_column(String(8), default="18:00:00")
    call_days: Mapped[list[Any]] = mapped_column(default=list)
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=1)
    call_timeout_seconds: Mapped[int] = mapped_column(Integer, default=60)
    from_numbers: Mapped[list[Any]] = mapped_column(default=list)
    use_managed_numbers: Mapped[bool] = mapped_column(Boolean, default=False)  # seed: use_vanira_managed
    retry_failed_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    max_retries_failed: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_failed_seconds: Mapped[int] = mapped_column(Integer, default=0)
    retry_busy_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    max_retries_busy: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_busy_seconds: Mapped[int] = mapped_column(Integer, default=0)
    retry_no_answer_calls: Mapped[bool] = mapped_column(Boolean, default=False)
    max_retries_no_answer: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_no_answer_seconds: Mapped[int] = mapped_column(Integer, default=0)
    allow_reschedule: Mapped[bool] = mapped_column(Boolean, default=False)
    max_reschedules_per_prospect: Mapped[int | None] = mapped_column(Integer)
    reschedule_min_delay_hours: Mapped[int | None] = mapped_column(Integer)
    is_hr_campaign: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_start_time: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    successful_calls: Mapped[int] = mapped_column(Integer, default=0)
    failed_calls: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class CampaignProspect(Base):
    """A candidate of a campaign and the dialer's progress on it."""

    __tablename__ = "campaign_prospects"
    __table_args__ = (
        UniqueConstraint("campaign_id", "prospect_id"),
        Index("ix_campaign_prospects_campaign_id_status", "campaign_id", "status"),
    )
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    campaign_id: Mapped[str] = mapped_column(String(36), ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    prospect_id: Mapped[str] = mapped_column(String(36), ForeignKey("prospects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|in_progress|completed|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reschedules: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(32))  # answered|busy|no_answer|failed
    last_reason: Mapped[str | None] = mapped_column(String(64))  # the end reason of the last attempt
    last_call_id: Mapped[str | None] = mapped_column(String(36))
    call_ids: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    next_attempt_at: Mapped[datetime | None]
    # the attempt in flight (control_api/dialer): who claimed it, until when the claim holds, with which caller ID
    claim_token: Mapped[str | None] = mapped_column(String(36))
    dialer_id: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    from_number: Mapped[str | None] = mapped_column(String(32))
    attempt_started_at: Mapped[datetime | None]
    last_attempt_ended_at: Mapped[datetime | None]
    retries_busy: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retries_no_answer: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retries_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class CampaignNumber(Base):
    """A caller ID allocated to a campaign (the seed's `allocated_dids`)."""

    __tablename__ = "campaign_numbers"
    __table_args__ = (UniqueConstraint("campaign_id", "phone_number_id"),)
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    campaign_id: Mapped[str] = mapped_column(String(36), ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    phone_number_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True
    )
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = _created()


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    agent_id: Mapped[str] = _agent()
    prospect_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("prospects.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))  # web_call | sip_call
    direction: Mapped[str] = mapped_column(String(16))  # inbound | outbound
    status: Mapped[str] = mapped_column(String(16), index=True)  # triggered|in-progress|completed|failed
    phone_from: Mapped[str | None] = mapped_column(String(32))
    phone_to: Mapped[str | None] = mapped_column(String(32))
    call_triggered_at: Mapped[datetime] = _created()
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)  # seconds, answered → ended
    recording_path: Mapped[str | None] = mapped_column(Text)
    provider_call_id: Mapped[str | None] = mapped_column(String(255), index=True)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    is_successful: Mapped[bool | None] = mapped_column(Boolean)  # per the agent's success_metric
    extra_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    call_data: Mapped[list[Any]] = mapped_column(default=list)  # [{key, value}]
    continues_call_id: Mapped[str | None] = mapped_column(String(36))  # the web call this session continues
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class CallEvent(Base):
    """One entry of a call's timeline, ordered by `seq` within the call."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)
    id: Mapped[str] = _id()
    client_id: Mapped[str] = _client()
    call_id: Mapped[str] = mapped_column(String(36), ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # transcript | status | tool_call | tool_result | …
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
