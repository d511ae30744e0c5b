"""SIP trunks (`/sip-trunks`): the SIP providers a client's numbers live on. Passwords are write-only."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource
from control_api.schemas.sip_trunks import (
    RegistrationOut,
    TrunkCreate,
    TrunkDeleted,
    TrunkList,
    TrunkOut,
    TrunkUpdate,
)
from control_api.storage import sip_trunks as trunk_store
from control_api.storage.models import SipTrunk
from control_api.storage.owned import delete_owned, get_owned, list_owned, update_owned

api = Resource("SIP trunks")

TRUNK_404 = ("SIP_TRUNK_NOT_FOUND", "SIP trunk not found")


def registration_out(ctx: Ctx, trunk: SipTrunk) -> RegistrationOut | None:
    """This server's registration with `trunk` (null when the trunk does not ask for one, or SIP is off)."""
    sip = ctx.runtime.sip
    status = sip.trunking.registration(trunk.id) if sip is not None and trunk.register else None
    if status is None:
        return None
    expires = datetime.fromtimestamp(status.expires_at, UTC) if status.expires_at is not None else None
    return RegistrationOut(state=status.state, expires_at=expires, last_error=status.last_error)


async def trunks_changed(ctx: Ctx) -> None:
    """Trusted sources and registrations follow the stored trunks at once (not only on the next refresh)."""
    if ctx.runtime.sip is not None:
        await ctx.runtime.sip.trunking.changed()


def trunk_out(trunk: SipTrunk, ctx: Ctx) -> TrunkOut:
    return TrunkOut(
        id=trunk.id,
        client_id=trunk.client_id,
        name=trunk.name,
        host=trunk.host,
        port=trunk.port,
        transport=trunk.transport,
        username=trunk.username,
        has_password=bool(trunk.password),
        register=bool(trunk.register),
        srtp=bool(trunk.srtp),
        registration=registration_out(ctx, trunk),
        created_at=trunk.created_at,
        updated_at=trunk.updated_at,
    )


def trunk_fields(body: TrunkCreate, name: str | None = None) -> dict[str, Any]:
    """The columns of a new trunk (`name` when the body has none)."""
    return {**body.model_dump(), "name": body.name or name}


@api.get("/sip-trunks", response=TrunkList)
async def list_trunks(ctx: Ctx) -> TrunkList:
    """List your SIP trunks (passwords are never returned)."""
    return TrunkList(trunks=[trunk_out(t, ctx) for t in await list_owned(ctx.db, SipTrunk, ctx.client_id)])


@api.post("/sip-trunks", body=TrunkCreate, response=TrunkOut)
async def create_trunk(ctx: Ctx) -> TrunkOut:
    """Store a SIP trunk: host, port, transport, optional digest credentials, and whether to register with it."""
    trunk = await trunk_store.create_trunk(ctx.db, ctx.client_id, trunk_fields(ctx.body))
    await trunks_changed(ctx)
    return trunk_out(trunk, ctx)


@api.get("/sip-trunks/{id}", response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def get_trunk(ctx: Ctx) -> TrunkOut:
    """Get one SIP trunk."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    return trunk_out(or_404(await get_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id), *TRUNK_404), ctx)


@api.patch("/sip-trunks/{id}", body=TrunkUpdate, response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def update_trunk(ctx: Ctx) -> TrunkOut:
    """Update a SIP trunk; null clears name, username or password."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    data = ctx.body.model_dump(exclude_unset=True)
    data = {k: v for k, v in data.items() if v is not None or k in ("name", "username", "password")}
    trunk = or_404(await update_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id, data), *TRUNK_404)
    await trunks_changed(ctx)
    return trunk_out(trunk, ctx)


@api.delete("/sip-trunks/{id}", response=TrunkDeleted, errors=("SIP_TRUNK_NOT_FOUND",))
async def delete_trunk(ctx: Ctx) -> TrunkDeleted:
    """Delete a SIP trunk; numbers on it stay, without a trunk (outbound calls from them fail until re-linked)."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    trunk = or_404(await delete_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id), *TRUNK_404)
    await trunks_changed(ctx)
    return TrunkDeleted(success=True, id=trunk.id)


routes = api.routes
