"""SIP trunks (`/sip-trunks`): where Talkwire sends outbound calls and receives a number's inbound calls.

Talkwire's stand-in for the seed's VoBiz credentials. Passwords are write-only: never returned.
"""
from __future__ import annotations

import warnings
from datetime import datetime
from typing import Literal

from pydantic import Field

from control_api.schemas.common import RequestModel, ResponseModel

# A DNS name (labels of at most 63 characters: a longer one cannot even be looked up) or an IP literal; at most
# 200 characters, so the SRV names looked up for it (`_sips._tcp.` + host) stay within DNS's 255.
HOST_PATTERN = (r"^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Fa-f.]{0,39}:[0-9A-Fa-f:.]{0,39}"
                r"|([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}\.?)$")
Host = Field(min_length=1, max_length=200, pattern=HOST_PATTERN, examples=["sip.example.net"])
Transport = Literal["udp", "tcp", "tls"]

# The API field `register` shadows ABCMeta.register of the model classes, which nothing here uses.
warnings.filterwarnings("ignore", message='Field name "register" in "Trunk', category=UserWarning)


class TrunkCreate(RequestModel):
    name: str | None = Field(default=None, max_length=200)
    host: str = Host
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = "udp"
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)
    register: bool = Field(default=False, description="Keep our Contact registered with the trunk (REGISTER with "
                                                      "the trunk's credentials); inbound calls arrive on the binding")
    srtp: bool = Field(default=False, description="Offer SRTP with SDES keys (RTP/SAVP, a=crypto) on calls through "
                                                  "this trunk; inbound SRTP offers are answered either way")


class TrunkUpdate(RequestModel):
    name: str | None = Field(default=None, max_length=200)
    host: str | None = Field(default=None, min_length=1, max_length=200, pattern=HOST_PATTERN)
    port: int | None = Field(default=None, ge=1, le=65535)
    transport: Transport | None = None
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=200)
    register: bool | None = None
    srtp: bool | None = None


class RegistrationOut(ResponseModel):
    state: Literal["unregistered", "registering", "registered", "failed"]
    expires_at: datetime | None = Field(description="When the binding runs out (registered only)")
    last_error: str | None = Field(description="What the registrar answered the last failed attempt, or why it failed")


class TrunkOut(ResponseModel):
    id: str
    client_id: str
    name: str | None
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    register: bool = False
    srtp: bool = False
    registration: RegistrationOut | None = Field(
        default=None,
        description="This server's registration with the trunk; null when `register` is off or SIP is off")
    created_at: datetime
    updated_at: datetime


class TrunkList(ResponseModel):
    trunks: list[TrunkOut]


class TrunkDeleted(ResponseModel):
    success: bool
    id: str
