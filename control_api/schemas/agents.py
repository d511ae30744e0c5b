"""Agents (`/assistant`), their widget, data-collection parameters and media handlers."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from control_api.analysis.fields import PROSPECT_COLUMNS
from control_api.schemas.common import HeaderMap, RequestModel, ResponseModel

# Speech-to-speech model providers: named by the seed, not offered by this server yet.
SPEECH_TO_SPEECH = frozenset({"AZURE_REALTIME", "OPENAI_REALTIME", "GEMINI_LIVE"})


class ModelFallback(RequestModel):
    """`{provider, model}`: a language model (also the one that takes over when the agent's fails)."""

    provider: str = Field(min_length=1, max_length=64, examples=["LOCAL"])
    model: str = Field(min_length=1, max_length=200, examples=["smollm2-135m-instruct"])

    @field_validator("provider")
    @classmethod
    def _not_speech_to_speech(cls, value: str) -> str:
        if value.upper() in SPEECH_TO_SPEECH:
            raise ValueError(f"{value} is a speech-to-speech model provider, which this server does not support "
                             "yet; choose a text model (GET /discovery/models) with a voice and a transcription model")
        return value


class ModelChoice(ModelFallback):
    fallback: ModelFallback | None = None  # serves the rest of a turn when this model fails


class VoiceFallback(RequestModel):
    provider: str = Field(min_length=1, max_length=64, examples=["PIPER"])
    name: str = Field(min_length=1, max_length=200, examples=["joe"])


class VoiceChoice(VoiceFallback):
    fallback: VoiceFallback | None = None  # serves the rest of a turn when this voice fails


class TranscriptionFallback(RequestModel):
    provider: str = Field(min_length=1, max_length=64, examples=["WHISPER"])
    model: str = Field(min_length=1, max_length=200, examples=["tiny.en"])


class TranscriptionChoice(TranscriptionFallback):
    fallback: TranscriptionFallback | None = None  # transcribes the utterance when this model fails


def _languages(value: Any) -> Any:
    """A list of ISO 639-1 codes; a comma-separated string is accepted too ("hi,en")."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Languages = Annotated[
    list[Annotated[str, Field(max_length=64)]], BeforeValidator(_languages), Field(max_length=50),
    WithJsonSchema({"anyOf": [
        {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50},
        {"type": "string", "description": "comma-separated codes, e.g. \"hi,en\""},
    ]}),
]


class _AgentFields(RequestModel):
    language: str | None = Field(default=None, max_length=32, examples=["en-US"])
    model: ModelChoice | None = None
    voice: VoiceChoice | None = None
    transcription: TranscriptionChoice | None = None
    inbound_welcome_message: str | None = Field(default=None, max_length=10_000)
    data_collection: dict[str, Any] | None = None
    success_metric: dict[str, Any] | None = None
    input_needed_json_format: list[Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    speed: float | None = Field(default=None, ge=0.25, le=4)
    duty: str | None = Field(default=None, max_length=64)
    silence_alert_message: str | None = Field(default=None, max_length=2_000)
    call_end_duration: int | None = Field(default=None, ge=0, le=3_600_000)
    call_user_alert_duration: int | None = Field(default=None, ge=0, le=3_600_000)
    initial_disable_mic_duration: int | None = Field(default=None, ge=0, le=60_000)
    enable_lid_detection: bool | None = None
    lid_allowed_languages: Languages | None = None
    active: bool | None = None


class AgentCreate(_AgentFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Support Bot", "welcome_message": "Hey! How can I help you?",
        "agent_prompt": "You are a helpful assistant.",
        "language": "en-US", "model": {"provider": "LOCAL", "model": "smollm2-135m-instruct"},
        "voice": {"provider": "PIPER", "name": "joe"}, "transcription": {"provider": "WHISPER", "model": "tiny.en"},
        "data_collection": {"call_cut": [], "required_values": {}}, "duty": "support", "enable_lid_detection": True,
        "lid_allowed_languages": ["hi", "en"], "active": False,
    }]})

    name: str = Field(min_length=1, max_length=200)
    welcome_message: str = Field(max_length=10_000)
    agent_prompt: str = Field(max_length=100_000)


class AgentUpdate(_AgentFields):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    welcome_message: str | None = Field(default=None, max_length=10_000)
    agent_prompt: str | None = Field(default=None, max_length=100_000)


def _absent(value: object) -> bool:
    return value is None


class ModelFallbackOut(ResponseModel):
    provider: str
    model: str


class ModelOut(ModelFallbackOut):
    fallback: ModelFallbackOut | None = Field(default=None, exclude_if=_absent)  # when set


class VoiceFallbackOut(ResponseModel):
    provider: str
    name: str


class VoiceOut(VoiceFallbackOut):
    fallback: VoiceFallbackOut | None = Field(default=None, exclude_if=_absent)  # when set


class AgentSummary(ResponseModel):
    id: str
    name: str
    active: bool
    language: str
    model: ModelOut
    voice: VoiceOut
    transcription: ModelOut
    enable_lid_detection: bool
    lid_allowed_languages: list[str]
    created_at: datetime
    updated_at: datetime
    client_id: str


class AgentList(ResponseModel):
    agents: list[AgentSummary]


class AgentDetail(AgentSummary):
    welcome_message: str
    agent_prompt: str
    inbound_welcome_message: str | None
    data_collection: dict[str, Any] | None
    success_metric: dict[str, Any] | None
    input_needed_json_format: list[Any] | None
    temperature: float | None
    top_p: float | None
    speed: float | None
    duty: str | None
    silence_alert_message: str | None
    call_end_duration: int | None
    call_user_alert_duration: int | None
    initial_disable_mic_duration: int


class AgentCreated(ResponseModel):
    id: str
    name: str
    client_id: str
    created_at: datetime


class AgentUpdated(ResponseModel):
    id: str
    name: str
    active: bool
    updated_at: datetime


class AgentDeleted(ResponseModel):
    id: str
    name: str


# ---- widget ----------------------------------------------------------------------------------------

WidgetMode = Literal["voice_only", "chat_only", "chat_voice", "avatar_only", "chat_avatar"]
HexColor = Annotated[str, Field(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}$", examples=["#6366f1"])]


class WidgetOut(ResponseModel):
    id: str
    agent_id: str
    mode: str
    primary_color: str
    secondary_color: str
    icon: str | None
    created_at: datetime
    updated_at: datetime


class WidgetUpdate(RequestModel):
    mode: WidgetMode | None = None
    primary_color: HexColor | None = None
    secondary_color: HexColor | None = None
    icon: str | None = Field(default=None, max_length=200)


class WidgetUpdated(ResponseModel):
    id: str
    mode: str
    primary_color: str
    secondary_color: str
    icon: str | None
    updated_at: datetime


# ---- data collection -------------------------------------------------------------------------------

DataType = Literal["string", "boolean", "number", "enum", "date"]


def _known_column(store: bool | None, column: str | None) -> None:
    """`store_to_prospect` writes a prospect (lead) column: only the ones post-call analysis may set."""
    if store is not False and column is not None and column not in PROSPECT_COLUMNS:
        raise ValueError(f"prospect_column_name: {column!r} is not a prospect column (one of "
                         f"{', '.join(sorted(PROSPECT_COLUMNS))})")


def _column_when_stored(store_const: bool, negate: bool) -> dict[str, Any]:
    """The document says what `_known_column` checks: a stored column is one of PROSPECT_COLUMNS."""
    known = {"properties": {"prospect_column_name": {"enum": [*sorted(PROSPECT_COLUMNS), None]}}}
    condition = {"properties": {"store_to_prospect": {"const": store_const}}, "required": ["store_to_prospect"]}
    return {"if": condition, "else": known} if negate else {"if": condition, "then": known}


# ... and what the handler checks: an enum lists its values.
_ENUM_HAS_VALUES: dict[str, Any] = {
    "if": {"properties": {"data_type": {"const": "enum"}}, "required": ["data_type"]},
    "then": {"required": ["enum_values"], "properties": {"enum_values": {"type": "array", "minItems": 1}}},
}


class DataCollectionCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"allOf": [_column_when_stored(True, negate=False), _ENUM_HAS_VALUES]})

    key: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
    prompt: str = Field(min_length=1, max_length=10_000)
    data_type: DataType = "string"
    enum_values: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=100)
    store_to_prospect: bool = False
    prospect_column_name: str | None = Field(default=None, max_length=200)
    store_to_prospect_data: bool = False
    prospect_data_key: str | None = Field(default=None, max_length=200)
    store_directly_to_prospect: bool = False
    is_active: bool = True

    @model_validator(mode="after")
    def _column(self) -> DataCollectionCreate:
        _known_column(self.store_to_prospect, self.prospect_column_name if self.store_to_prospect else None)
        return self


class DataCollectionUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_column_when_stored(False, negate=True))

    prompt: str | None = Field(default=None, min_length=1, max_length=10_000)
    data_type: DataType | None = None
    enum_values: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=100)
    store_to_prospect: bool | None = None
    prospect_column_name: str | None = Field(default=None, max_length=200)
    store_to_prospect_data: bool | None = None
    prospect_data_key: str | None = Field(default=None, max_length=200)
    store_directly_to_prospect: bool | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _column(self) -> DataCollectionUpdate:
        _known_column(self.store_to_prospect, self.prospect_column_name)
        return self


class DataCollectionOut(ResponseModel):
    id: str
    agent_id: str
    key: str
    prompt: str
    data_type: str
    enum_values: list[str] | None
    store_to_prospect: bool
    prospect_column_name: str | None
    store_to_prospect_data: bool
    prospect_data_key: str | None
    store_directly_to_prospect: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


class DataCollectionList(ResponseModel):
    collections: list[DataCollectionOut]


class DataCollectionCreated(ResponseModel):
    id: str
    key: str
    prompt: str
    data_type: str
    agent_id: str
    created_at: datetime


class DataCollectionUpdated(ResponseModel):
    id: str
    key: str
    is_active: bool
    updated_at: datetime


# ---- media handlers --------------------------------------------------------------------------------

HttpUrl = Annotated[
    str, Field(max_length=2_000, pattern=r"^https?://[^\s/?#]+[^\s]*$", examples=["https://api.acme.com/kyc"])
]


class MediaHandlerCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={  # the document says what the handler checks
        "if": {"properties": {"route": {"const": "webhook"}}, "required": ["route"]},
        "then": {"required": ["webhook_url"], "properties": {"webhook_url": {"type": "string"}}},
    })

    reason: str = Field(min_length=1, max_length=200)
    route: Literal["vision", "webhook"]
    webhook_url: HttpUrl | None = None
    webhook_headers: HeaderMap | None = None
    inject_as: Literal["system", "user"]
    interrupt: bool


class MediaHandlerUpdate(RequestModel):
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    route: Literal["vision", "webhook"] | None = None
    webhook_url: HttpUrl | None = None
    webhook_headers: HeaderMap | None = None
    inject_as: Literal["system", "user"] | None = None
    interrupt: bool | None = None


class MediaHandlerOut(ResponseModel):
    id: str
    agent_id: str
    reason: str
    route: str
    webhook_url: str | None
    inject_as: str
    interrupt: bool
    created_at: datetime
    updated_at: datetime


class MediaHandlerList(ResponseModel):
    handlers: list[MediaHandlerOut]


class MediaHandlerCreated(ResponseModel):
    id: str
    reason: str
    route: str
    inject_as: str
    interrupt: bool


class MediaHandlerUpdated(ResponseModel):
    id: str
    reason: str
    updated_at: datetime


class Success(ResponseModel):
    success: bool
