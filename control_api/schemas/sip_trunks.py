"""SIP trunks (`/sip-trunks`): where Talkwire sends outbound calls and receives a number's inbound calls.

Talkwire's stand-in for the seed's VoBiz credentials. Passwords are write-only: never returned.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from control_api.schemas.common import RequestModel, ResponseModel

Host = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$", examples=["sip.example.net"])
Transport = Literal["udp", "tcp", "tls"]


class TrunkCreate(RequestModel):
    name: str | None = Field(default=None, max_length=200)
    host: str = Host
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = "udp"
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)


class TrunkUpdate(RequestModel):
    name: str | None = Field(default=None, max_length=200)
    host: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)


class TrunkOut(ResponseModel):
    id: str
    client_id: str
    name: str | None
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    created_at: datetime
    updated_at: datetime


class TrunkList(ResponseModel):
    trunks: list[TrunkOut]


class TrunkDeleted(ResponseModel):
    success: bool
    id: str
