"""Fixtures and helpers shared by the control API tests (imported by each tests/test_api_*.py module).

- `settings` is the conftest's, on the `database_url` engine (SQLite always; PostgreSQL when
  TALKWIRE_TEST_POSTGRES_URL is set), so every API test runs on both.
- `api`: an `Api` on the in-process app: the default client's secret and publishable keys, a second
  client's secret key (`other`), and a provider catalog populated the way the local stack registers it.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from starlette.applications import Starlette

from agent_runtime.providers.base import CatalogEntry, ProviderRegistry
from control_api.openapi import ApiRoute
from control_api.settings import Settings
from control_api.storage.clients import add_key, create_client
from conftest import make_keys

LOCAL_MODEL = {"provider": "LOCAL", "model": "smollm2-135m-instruct"}
LOCAL_VOICE = {"provider": "PIPER", "name": "joe"}
LOCAL_TRANSCRIPTION = {"provider": "WHISPER", "model": "tiny.en"}


def test_registry() -> ProviderRegistry:
    """The catalog the embedded stack registers (names as agent_runtime.providers.catalog gives them)."""
    registry = ProviderRegistry()
    for entry in (
        CatalogEntry("llm", "LOCAL", "smollm2-135m-instruct"),
        CatalogEntry("llm", "FAKE", "echo"),
        CatalogEntry("tts", "PIPER", "joe", language="ENGLISH", gender="MALE"),
        CatalogEntry("tts", "ESPEAK", "en-us", language="ENGLISH", gender="MALE"),
        CatalogEntry("tts", "FAKE", "tone", language="ENGLISH"),
        CatalogEntry("stt", "WHISPER", "tiny.en", language="ENGLISH"),
        CatalogEntry("stt", "FAKE", "scripted", language="ENGLISH"),
    ):
        registry.add(entry)
    registry.defaults.update({"llm": ("LOCAL", "smollm2-135m-instruct"), "tts": ("PIPER", "joe"),
                              "stt": ("WHISPER", "tiny.en")})
    return registry


test_registry.__test__ = False  # a helper, not a test


@pytest.fixture
def settings(data_dir: Path, database_url: str) -> Settings:
    secret, publishable = make_keys()
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        host="127.0.0.1",
        port=8080,
        public_url="http://talkwire.test",
        secret_key=secret,
        publishable_key=publishable,
        providers="fake",
    )


@dataclass
class Api:
    """An httpx client on the app with the keys of two tenants."""

    http: httpx.AsyncClient
    app: Starlette
    secret: str
    publishable: str
    other: str  # a second client's secret key
    other_publishable: str
    _document: dict[str, Any] | None = None

    def headers(self, key: str | None) -> dict[str, str]:
        return {"X-API-Key": key} if key else {}

    async def call(self, method: str, path: str, *, key: str | None = "default", **kwargs: Any) -> httpx.Response:
        key = self.secret if key == "default" else key
        headers = {**self.headers(key), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """Assert 200 and that the body matches the response schema the OpenAPI document gives for it."""
        response = await self.call(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        documented = await self.documented(method, path)
        if documented is not None:
            schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
            jsonschema_rs.Draft202012Validator({**schema, "components": self._document["components"]}).validate(
                response.json())
        return response.json()

    async def error(self, method: str, path: str, status: int, code: str, **kwargs: Any) -> str:
        """Assert the error envelope with this status and code, both documented for the operation; returns the
        message."""
        response = await self.call(method, path, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] == code, body
        assert "Traceback" not in body["error"]["message"]
        documented = await self.documented(method, path)
        if documented is not None:
            listed = documented["responses"].get(str(status), {}).get("description", "")
            assert code in listed.split(", "), f"{method} {path}: {status} {code} is not documented ({listed!r})"
        return body["error"]["message"]

    async def documented(self, method: str, path: str) -> dict[str, Any] | None:
        """The OpenAPI operation that serves `method path` (None for routes outside the document)."""
        if self._document is None:
            self._document = (await self.http.get("/openapi.json")).json()
        bare = path.split("?", 1)[0]
        for route in self.app.routes:
            if isinstance(route, ApiRoute) and route.operation.method == method and route.path_regex.match(bare):
                return self._document["paths"][route.operation.path][method.lower()]
        return None

    # ---- shortcuts creating objects ----------------------------------------------------------------

    async def agent(self, **fields: Any) -> str:
        body = {"name": "Support Bot", "welcome_message": "Hi!", "agent_prompt": "Be brief.", **fields}
        return (await self.ok("POST", "/assistant", json=body))["id"]

    async def tool(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "say_hi", "description": "Show a greeting popup", "type": "client", **fields}
        return await self.ok("POST", "/tools", json=body)

    async def number(self, number: str, agent_id: str, **fields: Any) -> dict[str, Any]:
        body = {"phone_number": number, "agent_id": agent_id,
                "trunk": {"host": "sip.example.net", "username": "u", "password": "p"}, **fields}
        return await self.ok("POST", "/phone-numbers/import", json=body)

    async def web_call(self, agent_id: str, **fields: Any) -> str:
        return (await self.ok("POST", "/calls/create", json={"agent_id": agent_id, "type": "web", **fields}))["call_id"]


@pytest.fixture
async def api(app: Starlette, settings: Settings) -> AsyncIterator[Api]:
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        runtime.providers = test_registry()
        other = await create_client(runtime.db, "Other Co")
        other_secret, other_publishable = make_keys()
        await add_key(runtime.db, other.id, "secret", other_secret)
        await add_key(runtime.db, other.id, "publishable", other_publishable)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Api(http, app, settings.secret_key, settings.publishable_key, other_secret, other_publishable)
