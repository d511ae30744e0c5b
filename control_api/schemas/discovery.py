"""Discovery: the models, voices and transcription models an agent may choose, and the ICE servers."""
from __future__ import annotations

from pydantic import Field

from control_api.schemas.common import ResponseModel


class ModelEntry(ResponseModel):
    id: str
    name: str = Field(examples=["smollm2-135m-instruct"])
    ai_provider: str = Field(examples=["LOCAL"])
    status: str


class ModelList(ResponseModel):
    models: list[ModelEntry]


class VoiceEntry(ResponseModel):
    id: str
    name: str = Field(examples=["joe"])
    tts_provider: str = Field(examples=["PIPER"])
    language: str | None
    gender: str | None
    status: str


class VoiceList(ResponseModel):
    voices: list[VoiceEntry]


class TranscriptionModelEntry(ResponseModel):
    id: str
    name: str = Field(examples=["tiny.en"])
    provider: str = Field(examples=["WHISPER"])
    status: str


class TranscriptionModelList(ResponseModel):
    models: list[TranscriptionModelEntry]


class IceServer(ResponseModel):
    urls: list[str]
    username: str | None
    credential: str | None


class IceServerList(ResponseModel):
    ice_servers: list[IceServer]
