"""Phone numbers (`/phone-numbers`): E.164 numbers on a SIP trunk, each answered by an agent.

The seed imports numbers from VoBiz with VoBiz credentials; Talkwire takes a generic SIP trunk instead:
`trunk` (a new one, stored), `trunk_id` (a stored one) or `use_existing_credentials` (your latest trunk).
A number is unique across the server, since inbound calls are routed by the number dialled.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource, api_error
from control_api.routes.sip_trunks import TRUNK_404, trunk_fields
from control_api.schemas.common import normalise_e164, parse_uuid
from control_api.schemas.phone_numbers import (
    PhoneNumberDeleted,
    PhoneNumberImport,
    PhoneNumberImported,
    PhoneNumberLink,
    PhoneNumberLinked,
    PhoneNumberList,
    PhoneNumberOut,
)
from control_api.storage import phone_numbers as number_store
from control_api.storage import sip_trunks as trunk_store
from control_api.storage.agents import get_agent
from control_api.storage.models import PhoneNumber, SipTrunk
from control_api.storage.owned import get_owned

api = Resource("Phone numbers")

NUMBER_404 = ("PHONE_NUMBER_NOT_FOUND", "Phone number not found")
AGENT_404 = ("AGENT_NOT_FOUND", "Agent not found")

# Country calling code → ISO 3166 region, for the `country_code` of a number imported without one.
# Longest prefix wins; +1 (NANP) reads as US.
CALLING_CODES = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR", "34": "ES",
    "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT", "44": "GB", "45": "DK", "46": "SE", "47": "NO",
    "48": "PL", "49": "DE", "51": "PE", "52": "MX", "54": "AR", "55": "BR", "56": "CL", "57": "CO", "60": "MY",
    "61": "AU", "62": "ID", "63": "PH", "64": "NZ", "65": "SG", "66": "TH", "81": "JP", "82": "KR", "84": "VN",
    "86": "CN", "90": "TR", "91": "IN", "92": "PK", "94": "LK", "212": "MA", "234": "NG", "254": "KE",
    "351": "PT", "353": "IE", "358": "FI", "380": "UA", "420": "CZ", "852": "HK", "880": "BD", "886": "TW",
    "966": "SA", "971": "AE", "972": "IL", "977": "NP",
}


def country_of(number: str) -> str:
    digits = number.lstrip("+")
    for length in (3, 2, 1):
        region = CALLING_CODES.get(digits[:length])
        if region:
            return region
    return "ZZ"  # CLDR's "unknown region"


def number_out(row: PhoneNumber) -> PhoneNumberOut:
    return PhoneNumberOut(
        id=row.id,
        number=row.number,
        country_code=row.country_code or country_of(row.number),
        label=row.label or row.number,
        client_id=row.client_id,
        trunk_id=row.trunk_id,
        is_active=row.is_active,
        is_vanira_internal=row.is_internal,
        agent_id=row.agent_id,
    )


NUMBER_TAKEN = "Number already exists in the system: delete it first"


@api.get("/phone-numbers", response=PhoneNumberList)
async def list_numbers(ctx: Ctx) -> PhoneNumberList:
    """List your phone numbers."""
    return PhoneNumberList(numbers=[number_out(r) for r in await number_store.list_numbers(ctx.db, ctx.client_id)])


async def _trunk_choice(ctx: Ctx, body: PhoneNumberImport) -> tuple[str | None, Mapping[str, Any] | None]:
    """(stored trunk id, new trunk's columns): exactly one is set; 404 or BAD_REQUEST when there is none."""
    if body.trunk is not None:
        return None, trunk_fields(body.trunk, name=body.credential_label)
    if body.trunk_id is not None:
        trunk = await get_owned(ctx.db, SipTrunk, ctx.client_id, parse_uuid(body.trunk_id))
        return or_404(trunk, *TRUNK_404).id, None
    if body.use_existing_credentials:
        latest = await trunk_store.latest_trunk(ctx.db, ctx.client_id)
        if latest is None:
            raise api_error("BAD_REQUEST", "No credentials available: you have no stored SIP trunk")
        return latest.id, None
    raise api_error("BAD_REQUEST", "No credentials available: send trunk, trunk_id or use_existing_credentials: true")


@api.post(
    "/phone-numbers/import",
    body=PhoneNumberImport,
    response=PhoneNumberImported,
    errors=("AGENT_NOT_FOUND", "SIP_TRUNK_NOT_FOUND", "BAD_REQUEST", "CONFLICT"),
)
async def import_number(ctx: Ctx) -> PhoneNumberImported:
    """Bring a number you own on a SIP trunk and route its calls to an agent."""
    body: PhoneNumberImport = ctx.body
    agent = or_404(await get_agent(ctx.db, ctx.client_id, parse_uuid(body.agent_id)), *AGENT_404)
    if await number_store.number_taken(ctx.db, body.phone_number):
        raise api_error("CONFLICT", NUMBER_TAKEN)
    trunk_id, new_trunk = await _trunk_choice(ctx, body)
    fields = {
        "number": body.phone_number,
        "country_code": (body.country_code or country_of(body.phone_number)).upper(),
        "label": body.label or body.credential_label,
        "agent_id": agent.id,
        "is_active": True,
    }
    try:
        number, trunk = await number_store.add_number(ctx.db, ctx.client_id, fields, trunk_id=trunk_id,
                                                      new_trunk=new_trunk)
    except number_store.NumberTaken:
        raise api_error("CONFLICT", NUMBER_TAKEN) from None
    except LookupError:  # the trunk was deleted meanwhile
        raise api_error(*TRUNK_404) from None
    return PhoneNumberImported(
        phone_number=number.number,
        agent_id=agent.id,
        trunk_endpoint=f"sip:{trunk.host}:{trunk.port};transport={trunk.transport}",
        outbound_trunk_id=trunk.id,
        assigned=True,
        service_reloaded=True,  # inbound routing reads numbers from the database on each call
    )


@api.put("/phone-numbers/link", body=PhoneNumberLink, response=PhoneNumberLinked,
         errors=("PHONE_NUMBER_NOT_FOUND", "AGENT_NOT_FOUND"))
async def link_number(ctx: Ctx) -> PhoneNumberLinked:
    """Route a number's calls to another agent."""
    body: PhoneNumberLink = ctx.body
    number = or_404(await number_store.find_number(ctx.db, ctx.client_id, body.phone_number), *NUMBER_404)
    agent = or_404(await get_agent(ctx.db, ctx.client_id, parse_uuid(body.agent_id)), *AGENT_404)
    linked = or_404(await number_store.assign_agent(ctx.db, ctx.client_id, number.id, agent.id), *NUMBER_404)
    return PhoneNumberLinked(success=True, phone_number=linked.number, agent_id=agent.id)


@api.delete("/phone-numbers/{number}", response=PhoneNumberDeleted, errors=("PHONE_NUMBER_NOT_FOUND",))
async def delete_number(ctx: Ctx) -> PhoneNumberDeleted:
    """Remove a number (URL-encode the +: /phone-numbers/%2B918071387205; digits alone work too)."""
    try:
        wanted = normalise_e164(ctx.path("number"))
    except ValueError as exc:
        raise api_error("VALIDATION_ERROR", f"number: {exc}") from None
    number = or_404(await number_store.delete_number(ctx.db, ctx.client_id, wanted), *NUMBER_404)
    return PhoneNumberDeleted(phone_number=wanted, deleted=True, unassigned=number.agent_id is not None)


routes = api.routes
