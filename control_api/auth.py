"""API-key authentication and tenancy.

    principal = await authenticate(request)                      # secret keys only
    principal = await authenticate(request, publishable_ok=True)  # also pk_live_… (origin-checked)
    agent = or_404(await get_agent(db, principal.client_id, agent_id), "AGENT_NOT_FOUND", "Agent not found")

The key comes from `X-API-Key` or `Authorization: Bearer`. Missing → 401 UNAUTHORIZED; unknown or revoked →
401 INVALID_API_KEY; publishable where only secret keys go → 403 INSUFFICIENT_SCOPE; publishable with an
`Origin` outside its allowed origins → 403 ORIGIN_NOT_ALLOWED. Another client's object looks exactly like
a missing one (404 with the resource's code), never a 403 that would confirm it exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from control_api.errors import ApiError
from control_api.storage.clients import find_key
from control_api.storage.models import Base
from control_api.storage.owned import owned

T = TypeVar("T")
Row = TypeVar("Row", bound=Base)


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    key_id: str
    kind: str  # secret | publishable

    @property
    def is_secret(self) -> bool:
        return self.kind == "secret"


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def origin_allowed(origin: str | None, allowed: list[str] | None) -> bool:
    """`*` allows all; otherwise the Origin must equal an entry (scheme://host[:port], no trailing slash).

    A request without an Origin header (server-side code, curl) is not a browser on another site: allowed.
    """
    allowed = allowed or ["*"]
    if origin is None or "*" in allowed:
        return True
    return origin.rstrip("/").lower() in {entry.rstrip("/").lower() for entry in allowed}


async def authenticate(request: Request, *, publishable_ok: bool = False) -> Principal:
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "UNAUTHORIZED", "No API key provided: send X-API-Key or Authorization: Bearer")
    row = await find_key(request.app.state.runtime.db, key)
    if row is None or row.revoked_at is not None:
        raise ApiError(401, "INVALID_API_KEY", "API key is invalid or revoked")
    if row.kind != "secret":
        if not publishable_ok:
            raise ApiError(403, "INSUFFICIENT_SCOPE", "This endpoint needs a secret key (sk_live_…)")
        if not origin_allowed(request.headers.get("origin"), row.allowed_origins):
            raise ApiError(403, "ORIGIN_NOT_ALLOWED", "This publishable key is not allowed from this origin")
    principal = Principal(row.client_id, row.id, row.kind)
    request.state.principal = principal
    return principal


def or_404(row: T | None, code: str, message: str) -> T:
    """`row` as a repository found it for the caller's client, else 404 `code`: the repositories read another
    client's row as missing, so the answer is the same whether it is missing or another tenant's."""
    if row is None:
        raise ApiError(404, code, message)
    return row


async def get_owned(
    session: AsyncSession, model: type[Row], object_id: str | None, principal: Principal | str, code: str,
    message: str,
) -> Row:
    """Load `model` by id for this client in `session`, or raise 404 `code` (see `or_404`)."""
    client_id = principal if isinstance(principal, str) else principal.client_id
    return or_404(await owned(session, model, client_id, object_id), code, message)
