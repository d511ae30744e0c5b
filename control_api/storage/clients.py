"""Clients (tenants) and their API keys.

A key is `sk_live_<43 url-safe chars>` (secret) or `pk_live_<…>` (publishable): 256 random bits. Only its
SHA-256 is stored, plus a short prefix to recognise it in listings. A publishable key is public by design
(it ships in web pages), so its plaintext is kept in `display_key` for the demo page and the banner.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from control_api.storage import Database
from control_api.storage.models import ApiKey, Client, utcnow

KeyKind = Literal["secret", "publishable"]
KEY_PREFIXES: dict[str, str] = {"secret": "sk_live_", "publishable": "pk_live_"}
PREFIX_HINT_CHARS = 12


class KeyRejected(ValueError):
    """A key that cannot be stored: wrong kind prefix, or already used elsewhere."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key(kind: KeyKind) -> str:
    return KEY_PREFIXES[kind] + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: str
    client_id: str
    kind: str
    key: str  # plaintext: shown to the user once


async def create_client(db: Database, name: str, *, is_default: bool = False) -> Client:
    async with db.session() as session:
        client = Client(name=name, is_default=is_default)
        session.add(client)
    return client


async def list_clients(db: Database) -> list[Client]:
    async with db.session() as session:
        return list((await session.scalars(select(Client).order_by(Client.created_at, Client.id))).all())


async def get_client(db: Database, client_id: str) -> Client | None:
    async with db.session() as session:
        return await session.get(Client, client_id)


def check_kind(key: str, kind: KeyKind) -> None:
    """Raise KeyRejected unless `key` looks like a key of `kind`."""
    expected = KEY_PREFIXES[kind][:3]  # "sk_" / "pk_": lets deployments use sk_test_… and the like
    if not key.startswith(expected):
        raise KeyRejected(f"a {kind} key must start with {expected!r}")


async def add_key(
    db: Database,
    client_id: str,
    kind: KeyKind,
    key: str | None = None,
    *,
    origins: list[str] | None = None,
    label: str | None = None,
) -> CreatedKey:
    """Store a new key for `client_id` (generated unless `key` is given) and return it in plaintext once."""
    if kind not in KEY_PREFIXES:
        raise KeyRejected(f"unknown key kind {kind!r}")
    key = key or generate_key(kind)
    check_kind(key, kind)
    async with db.session() as session:
        if await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))):
            raise KeyRejected("this key is already registered")
        row = ApiKey(
            client_id=client_id,
            kind=kind,
            key_hash=hash_key(key),
            prefix=key[:PREFIX_HINT_CHARS],
            display_key=key if kind == "publishable" else None,
            allowed_origins=list(origins) if origins else ["*"],
            label=label,
        )
        session.add(row)
    return CreatedKey(row.id, client_id, kind, key)


async def find_key(db: Database, key: str) -> ApiKey | None:
    """The stored key matching this plaintext, revoked or not."""
    async with db.session() as session:
        return await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))


async def list_keys(db: Database, client_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if client_id is not None:
        query = query.where(ApiKey.client_id == client_id)
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def revoke_key(db: Database, key_id: str) -> ApiKey | None:
    """Mark a key revoked (idempotent: the first revocation time is kept). None when no such key."""
    async with db.session() as session:
        row = await session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
    return row


@dataclass(slots=True)
class DefaultClient:
    """What start-up ensured: the default client, its publishable key, and a secret key only if just made."""

    client_id: str
    publishable_key: str
    created_secret_key: str | None  # plaintext, set only when generated on this start


async def ensure_default_client(
    db: Database, *, secret_key: str | None = None, publishable_key: str | None = None
) -> DefaultClient:
    """Make sure the default client exists with a usable secret and publishable key (idempotent).

    Keys given (from TALKWIRE_SECRET_KEY / TALKWIRE_PUBLISHABLE_KEY) are registered for the default client
    if new. Without them a key is generated only when the client has no active key of that kind.
    """
    async with db.session() as session:
        client = await session.scalar(select(Client).where(Client.is_default.is_(True)).order_by(Client.created_at))
        if client is None:
            client = Client(name="Default", is_default=True)
            session.add(client)
    result = DefaultClient(client.id, "", None)

    configured: tuple[tuple[KeyKind, str | None], ...] = (("secret", secret_key), ("publishable", publishable_key))
    for kind, given in configured:
        if given:
            existing = await find_key(db, given)
            if existing is None:
                await add_key(db, client.id, kind, given, label="from environment")
            elif existing.client_id != client.id or existing.kind != kind:
                raise KeyRejected(f"the configured {kind} key is registered for another client or kind")
            if kind == "publishable":
                result.publishable_key = given
            continue
        active = [k for k in await list_keys(db, client.id) if k.kind == kind and k.revoked_at is None]
        if kind == "publishable" and any(k.display_key for k in active):
            result.publishable_key = next(k.display_key for k in reversed(active) if k.display_key)
        elif not active:
            created = await add_key(db, client.id, kind, label="generated on first start")
            if kind == "secret":
                result.created_secret_key = created.key
            else:
                result.publishable_key = created.key
    return result
