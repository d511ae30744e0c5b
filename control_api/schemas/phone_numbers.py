"""Phone numbers (`/phone-numbers`): numbers on a SIP trunk, each routed to an agent."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from control_api.schemas.common import E164, RequestModel, ResponseModel
from control_api.schemas.sip_trunks import TrunkCreate


class PhoneNumberOut(ResponseModel):
    id: str
    number: str
    country_code: str
    label: str
    client_id: str
    trunk_id: str | None
    is_active: bool
    is_vanira_internal: bool
    agent_id: str | None


class PhoneNumberList(ResponseModel):
    numbers: list[PhoneNumberOut]


class PhoneNumberImport(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "phone_number": "+918071387205", "agent_id": "caaa5b2a-5fd9-4974-a59e-1c9c01c4c6f5",
        "trunk": {"host": "sip.example.net", "port": 5060, "transport": "udp", "username": "acme", "password": "…"},
        "credential_label": "primary",
    }]})

    phone_number: E164
    agent_id: str = Field(min_length=1, max_length=64)
    trunk: TrunkCreate | None = Field(default=None, description="A new SIP trunk for this number (stored).")
    trunk_id: str | None = Field(default=None, max_length=64, description="A stored trunk (GET /sip-trunks).")
    use_existing_credentials: bool = Field(default=False, description="Use your most recently stored trunk.")
    credential_label: str | None = Field(default=None, max_length=200, description="Name for a new trunk.")
    label: str | None = Field(default=None, max_length=200)
    country_code: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")


class PhoneNumberImported(ResponseModel):
    phone_number: str
    agent_id: str
    trunk_endpoint: str
    outbound_trunk_id: str
    assigned: bool
    service_reloaded: bool


class PhoneNumberLink(RequestModel):
    phone_number: E164
    agent_id: str = Field(min_length=1, max_length=64)


class PhoneNumberLinked(ResponseModel):
    success: bool
    phone_number: str
    agent_id: str


class PhoneNumberDeleted(ResponseModel):
    phone_number: str
    deleted: bool
    unassigned: bool
