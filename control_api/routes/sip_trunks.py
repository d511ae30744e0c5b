"""SIP trunks (`/sip-trunks`): the SIP providers a client's numbers live on. Passwords are write-only."""
from __future__ import annotations

from sqlalchemy import select

from control_api.auth import get_owned
from control_api.openapi import Ctx, Resource
from control_api.schemas.sip_trunks import TrunkCreate, TrunkDeleted, TrunkList, TrunkOut, TrunkUpdate
from control_api.storage.models import SipTrunk, utcnow

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


def new_trunk(client_id: str, body: TrunkCreate, name: str | None = None) -> SipTrunk:
    return SipTrunk(client_id=client_id, **{**body.model_dump(), "name": body.name or name})


@api.get("/sip-trunks", response=TrunkList)
async def list_trunks(ctx: Ctx) -> TrunkList:
    """List your SIP trunks (passwords are never returned)."""
    async with ctx.db.session() as session:
        rows = (await session.scalars(
            select(SipTrunk).where(SipTrunk.client_id == ctx.client_id).order_by(SipTrunk.created_at, SipTrunk.id)
        )).all()
    return TrunkList(trunks=[trunk_out(t) for t in rows])


@api.post("/sip-trunks", body=TrunkCreate, response=TrunkOut)
async def create_trunk(ctx: Ctx) -> TrunkOut:
    """Store a SIP trunk: host, port, transport and optional digest credentials."""
    async with ctx.db.session() as session:
        trunk = new_trunk(ctx.client_id, ctx.body)
        session.add(trunk)
        await session.flush()
    return trunk_out(trunk)


@api.get("/sip-trunks/{id}", response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def get_trunk(ctx: Ctx) -> TrunkOut:
    """Get one SIP trunk."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    async with ctx.db.session() as session:
        trunk = await get_owned(session, SipTrunk, trunk_id, ctx.principal, *TRUNK_404)
    return trunk_out(trunk)


@api.patch("/sip-trunks/{id}", body=TrunkUpdate, response=TrunkOut, errors=("SIP_TRUNK_NOT_FOUND",))
async def update_trunk(ctx: Ctx) -> TrunkOut:
    """Update a SIP trunk; null clears name, username or password."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    data = ctx.body.model_dump(exclude_unset=True)
    data = {k: v for k, v in data.items() if v is not None or k in ("name", "username", "password")}
    async with ctx.db.session() as session:
        trunk = await get_owned(session, SipTrunk, trunk_id, ctx.principal, *TRUNK_404)
        for name, value in data.items():
            setattr(trunk, name, value)
        trunk.updated_at = utcnow()
    return trunk_out(trunk)


@api.delete("/sip-trunks/{id}", response=TrunkDeleted, errors=("SIP_TRUNK_NOT_FOUND",))
async def delete_trunk(ctx: Ctx) -> TrunkDeleted:
    """Delete a SIP trunk; numbers on it stay, without a trunk (outbound calls from them fail until re-linked)."""
    trunk_id = ctx.uuid("id", TRUNK_404[0])
    async with ctx.db.session() as session:
        trunk = await get_owned(session, SipTrunk, trunk_id, ctx.principal, *TRUNK_404)
        await session.delete(trunk)
    return TrunkDeleted(success=True, id=trunk.id)


routes = api.routes
