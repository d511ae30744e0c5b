"""SIP trunks (`/sip-trunks`): the SIP providers a client's numbers live on. Passwords are write-only."""
from __future__ import annotations

from typing import Any

from control_api.auth import or_404
from control_api.openapi import Ctx, Resource
from control_api.schemas.sip_trunks import TrunkCreate, TrunkDeleted, TrunkList, TrunkOut, TrunkUpdate
from control_api.storage import sip_trunks as trunk_store
from control_api.storage.models import SipTrunk
from control_api.storage.owned import delete_owned, get_owned, list_owned, update_owned

api = Resource("SIP trunks")

TRUNK_404 = ("SIP_TRUNK_NOT_FOUND", "SIP trunk not found")


def trunk_out(trunk: SipTrunk) -> TrunkOut:
    return TrunkOut(
        id=trunk.id,
        client_id=trunk.client_id,
        name=trunk.name,
        host=trunk.host,
        port=trunk.port,
        transport=trunk.transport,
        username=trunk.username,
        has_password=bool(trunk.password),
        created_at=trunk.created_at,
        updated_at=trunk.updated_at,
    )


def trunk_fields(body: TrunkCreate, name: str | None = None) -> dict[str, Any]:
    """The columns of a new trunk (`name` when the body has none)."""
    return {**body.model_dump(), "name": body.name or name}


@api.get("/sip-trunks", response=TrunkList)
async def list_trunks(ctx: Ctx) -> TrunkList:
    """List your SIP trunks (passwords are never returned)."""
    return TrunkList(trunks=[trunk_out(t) for t in await list_owned(ctx.db, SipTrunk, ctx.client_id)])


@api.post("/sip-trunks", body=TrunkCreate, response=TrunkOut)
async def create_trunk(ctx: Ctx) -> TrunkOut:
    """Store a SIP trunk: host, port, transport and optional digest credentials."""
    return trunk_out(await trunk_store.create_trunk(ctx.db, ctx.client_id, trunk_fields(ctx.body)))


@api.get("/sip-trunks/{id}", response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def get_trunk(ctx: Ctx) -> TrunkOut:
    """Get one SIP trunk."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    return trunk_out(or_404(await get_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id), *TRUNK_404))


@api.patch("/sip-trunks/{id}", body=TrunkUpdate, response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def update_trunk(ctx: Ctx) -> TrunkOut:
    """Update a SIP trunk; null clears name, username or password."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    data = ctx.body.model_dump(exclude_unset=True)
    data = {k: v for k, v in data.items() if v is not None or k in ("name", "username", "password")}
    return trunk_out(or_404(await update_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id, data), *TRUNK_404))


@api.delete("/sip-trunks/{id}", response=TrunkDeleted, errors=("SIP_TRUNK_NOT_FOUND",))
async def delete_trunk(ctx: Ctx) -> TrunkDeleted:
    """Delete a SIP trunk; numbers on it stay, without a trunk (outbound calls from them fail until re-linked)."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    trunk = or_404(await delete_owned(ctx.db, SipTrunk, ctx.client_id, trunk_id), *TRUNK_404)
    return TrunkDeleted(success=True, id=trunk.id)


routes = api.routes
