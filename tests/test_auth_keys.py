"""Auth error codes, tenancy, CORS preflight and /health, through the real app in-process.

Two probe routes are added to the app here (test doubles of a secret-only and a browser-facing endpoint)
so auth is tested on its own, whatever the resource routes do.
"""
from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_api.app import create_app
from control_api.auth import authenticate, get_owned, origin_allowed
from control_api.errors import ApiError
from control_api.storage.clients import add_key, create_client, find_key, revoke_key
from control_api.storage.models import Agent


async def _secret_only(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return JSONResponse({"client_id": principal.client_id, "key_id": principal.key_id, "kind": principal.kind})


async def _browser_ok(request: Request) -> JSONResponse:
    principal = await authenticate(request, publishable_ok=True)
    return JSONResponse({"client_id": principal.client_id, "kind": principal.kind})


async def _agent(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    async with request.app.state.runtime.db.session() as session:
        agent = await get_owned(session, Agent, request.path_params["id"], principal, "AGENT_NOT_FOUND",
                                "Agent not found")
        return JSONResponse({"id": agent.id, "name": agent.name})


@pytest.fixture
def app(settings) -> Starlette:
    app = create_app(settings)
    app.router.routes.extend([
        Route("/_probe/secret", _secret_only),
        Route("/_probe/browser", _browser_ok),
        Route("/_probe/agents/{id}", _agent),
    ])
    return app


def _error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


async def test_health_needs_no_key(client):
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_secret_key_by_header_or_bearer(client, settings, app):
    runtime = app.state.runtime
    for headers in ({"X-API-Key": settings.secret_key}, {"Authorization": f"Bearer {settings.secret_key}"}):
        response = await client.get("/_probe/secret", headers=headers)
        assert response.status_code == 200
        assert response.json()["client_id"] == runtime.bootstrap.client_id
        assert response.json()["kind"] == "secret"


@pytest.mark.parametrize("headers, status, code", [
    ({}, 401, "UNAUTHORIZED"),
    ({"Authorization": "Basic abc"}, 401, "UNAUTHORIZED"),
    ({"X-API-Key": "sk_live_not_a_real_key"}, 401, "INVALID_API_KEY"),
    ({"Authorization": "Bearer pk_live_nope"}, 401, "INVALID_API_KEY"),
])
async def test_missing_or_unknown_key(client, headers, status, code):
    response = await client.get("/_probe/secret", headers=headers)
    assert response.status_code == status and _error(response) == code


async def test_publishable_key_scope(client, settings):
    pk = {"X-API-Key": settings.publishable_key}
    response = await client.get("/_probe/secret", headers=pk)
    assert response.status_code == 403 and _error(response) == "INSUFFICIENT_SCOPE"
    response = await client.get("/_probe/browser", headers={**pk, "Origin": "https://anywhere.example"})
    assert response.status_code == 200 and response.json()["kind"] == "publishable"


async def test_revoked_key_stops_working(client, app):
    runtime = app.state.runtime
    created = await add_key(runtime.db, runtime.bootstrap.client_id, "secret")
    headers = {"X-API-Key": created.key}
    assert (await client.get("/_probe/secret", headers=headers)).status_code == 200
    await revoke_key(runtime.db, created.id)
    response = await client.get("/_probe/secret", headers=headers)
    assert response.status_code == 401 and _error(response) == "INVALID_API_KEY"


async def test_publishable_key_origins(client, app):
    runtime = app.state.runtime
    created = await add_key(runtime.db, runtime.bootstrap.client_id, "publishable",
                            origins=["https://shop.example", "http://localhost:3000"])
    headers = {"X-API-Key": created.key}
    for origin in ("https://shop.example", "http://localhost:3000", "https://SHOP.example/"):
        response = await client.get("/_probe/browser", headers={**headers, "Origin": origin})
        assert response.status_code == 200, origin
    response = await client.get("/_probe/browser", headers={**headers, "Origin": "https://evil.example"})
    assert response.status_code == 403 and _error(response) == "ORIGIN_NOT_ALLOWED"
    assert (await client.get("/_probe/browser", headers=headers)).status_code == 200  # no Origin: not a browser


def test_origin_rules():
    assert origin_allowed("https://a.example", ["*"])
    assert origin_allowed("https://a.example", None)
    assert not origin_allowed("https://a.example", ["https://b.example"])
    assert not origin_allowed("https://a.example.evil", ["https://a.example"])
    assert not origin_allowed("null", ["https://a.example"])


async def test_another_clients_object_looks_missing(client, app, settings):
    runtime = app.state.runtime
    other = await create_client(runtime.db, "Other")
    other_key = await add_key(runtime.db, other.id, "secret")
    async with runtime.db.session() as session:
        mine = Agent(client_id=runtime.bootstrap.client_id, name="Mine", welcome_message="hi", agent_prompt="p")
        session.add(mine)
    own = await client.get(f"/_probe/agents/{mine.id}", headers={"X-API-Key": settings.secret_key})
    assert own.status_code == 200 and own.json()["name"] == "Mine"
    foreign = await client.get(f"/_probe/agents/{mine.id}", headers={"X-API-Key": other_key.key})
    missing = await client.get("/_probe/agents/00000000-0000-0000-0000-000000000000",
                               headers={"X-API-Key": other_key.key})
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"error": {"code": "AGENT_NOT_FOUND", "message": "Agent not found"}}
    async with runtime.db.session() as session:
        with pytest.raises(ApiError):
            await get_owned(session, Agent, None, other.id, "AGENT_NOT_FOUND", "Agent not found")


async def test_configured_keys_are_the_default_clients(app, client, settings):
    runtime = app.state.runtime
    assert runtime.bootstrap.publishable_key == settings.publishable_key
    assert runtime.bootstrap.created_secret_key is None
    assert (await find_key(runtime.db, settings.secret_key)).client_id == runtime.bootstrap.client_id


@pytest.mark.parametrize("path", ["/calls/create", "/discovery/ice-servers", "/webrtc", "/media/upload"])
async def test_cors_preflight_for_browser_paths(client, path):
    response = await client.options(path, headers={
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    })
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed and "content-type" in allowed and "authorization" in allowed


async def test_cors_headers_on_browser_responses_only(client):
    # Whatever the route answers (here: no key), a browser must be able to read it.
    response = await client.post("/calls/create", json={}, headers={"Origin": "https://shop.example"})
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert "origin" in response.headers["vary"].lower()
    # Secret-key API paths are not cross-origin.
    response = await client.get("/health", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in response.headers
    response = await client.options("/assistant", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in response.headers
