"""Server (webhook) tools against a real local webhook server: Starlette on uvicorn, 127.0.0.1, free port."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent_runtime.tools import netguard
from agent_runtime.tools.netguard import address_allowed, checked_addresses
from agent_runtime.tools.server import WebhookCaller
from presets.validation import validate_tool


@dataclass
class WebhookServer:
    """Test double for a tool author's webhook: records every request it gets."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


def _app(record: WebhookServer) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        record.requests.append({"method": request.method, "path": request.url.path,
                                "query": dict(request.query_params), "headers": dict(request.headers),
                                "body": body})
        return JSONResponse({"status": "shipped", "eta_days": 2})

    async def slow(request: Request) -> Response:
        await asyncio.sleep(5)
        return JSONResponse({})

    async def fail(request: Request) -> Response:
        return JSONResponse({"detail": "order service down"}, status_code=503)

    async def big(request: Request) -> Response:
        return PlainTextResponse("x" * 100_000)

    async def text(request: Request) -> Response:
        return PlainTextResponse("Order A1 is on its way.")

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=int(request.query_params.get("code", 302)))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[
        Route("/hook/{rest:path}", hook, methods=methods), Route("/slow", slow, methods=methods),
        Route("/fail", fail, methods=methods), Route("/big", big, methods=methods),
        Route("/text", text, methods=methods), Route("/redirect", redirect, methods=methods),
    ])


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookServer]:
    record = WebhookServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    record.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(_app(record), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(20):
        while not server.started:
            await asyncio.sleep(0.01)
    yield record
    server.should_exit = True
    await task
    sock.close()


def tool(url: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "check_order_status", "description": "Check an order", "type": "server",
        "parameters": [{"name": "order_id", "type": "string", "required": True},
                       {"name": "qty", "type": "integer"}, {"name": "gift", "type": "boolean"}],
        "server": {"url": url, "method": "POST"},
        **extra,
    }
    return validate_tool(body)


@pytest.fixture
async def caller() -> AsyncIterator[WebhookCaller]:
    hooks = WebhookCaller(allow_private=True, timeout=5)
    yield hooks
    await hooks.aclose()


async def test_templated_request_arrives_as_configured(webhook, caller):
    t = tool(f"{webhook.base_url}/hook/orders/{{{{order_id}}}}",
             request={"body": {"order": {"id": "{{order_id}}", "qty": "{{qty}}"}, "gift": "{{gift}}",
                               "source": "talkwire"},
                      "headers": {"X-API-Key": "sk-abc", "X-Order": "id-{{order_id}}"},
                      "query": {"q": "{{qty}}", "v": "2"}})
    t["server"]["method"] = "PUT"
    result = await caller.call(t, {"order_id": "A 1", "qty": 3, "gift": False})
    assert result.ok and result.status_code == 200
    assert result.for_llm() == {"status": "shipped", "eta_days": 2}
    (got,) = webhook.requests
    assert got["method"] == "PUT"
    assert got["path"] == "/hook/orders/A 1"  # percent-encoded on the wire, decoded by the server
    assert got["query"] == {"q": "3", "v": "2"}
    assert got["headers"]["x-api-key"] == "sk-abc"
    assert got["headers"]["x-order"] == "id-A 1"
    assert got["headers"]["content-type"] == "application/json"
    assert json.loads(got["body"]) == {"order": {"id": "A 1", "qty": 3}, "gift": False, "source": "talkwire"}


async def test_omitted_request_maps_arguments_to_body_or_query(webhook, caller):
    await caller.call(tool(f"{webhook.base_url}/hook/a"), {"order_id": "B2", "qty": 1, "unknown": "x"})
    get_tool = tool(f"{webhook.base_url}/hook/b")
    get_tool["server"]["method"] = "GET"
    await caller.call(get_tool, {"order_id": "B2", "gift": True})
    assert json.loads(webhook.requests[0]["body"]) == {"order_id": "B2", "qty": 1}
    assert webhook.requests[1]["method"] == "GET"
    assert webhook.requests[1]["query"] == {"order_id": "B2", "gift": "true"}
    assert webhook.requests[1]["body"] == b""


async def test_timeout_is_a_recoverable_error(webhook):
    hooks = WebhookCaller(allow_private=True, timeout=0.3)
    try:
        result = await hooks.call(tool(f"{webhook.base_url}/slow"), {"order_id": "1"})
    finally:
        await hooks.aclose()
    assert not result.ok
    assert "did not answer within 0.3 s" in result.error
    assert result.for_llm()["status"] == "error"


async def test_per_tool_timeout_overrides_default(webhook, caller):
    t = tool(f"{webhook.base_url}/slow", timeout_seconds=0.2)
    assert "0.2 s" in (await caller.call(t, {"order_id": "1"})).error


async def test_non_2xx(webhook, caller):
    result = await caller.call(tool(f"{webhook.base_url}/fail"), {"order_id": "1"})
    assert not result.ok and result.status_code == 503
    assert result.for_llm() == {"status": "error", "error": "The webhook answered HTTP 503.", "status_code": 503,
                                "response": {"detail": "order service down"}}


async def test_big_response_is_capped_and_text_passes(webhook):
    hooks = WebhookCaller(allow_private=True, max_response_bytes=1000)
    try:
        big = await hooks.call(tool(f"{webhook.base_url}/big"), {"order_id": "1"})
        text = await hooks.call(tool(f"{webhook.base_url}/text"), {"order_id": "1"})
    finally:
        await hooks.aclose()
    assert big.ok and big.truncated
    assert big.body.startswith("x" * 1000) and big.body.endswith("[response truncated at 1000 bytes]")
    assert len(big.body) < 1100
    assert text.for_llm() == "Order A1 is on its way."


async def test_connection_refused_is_an_error(caller):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    result = await caller.call(tool(f"http://127.0.0.1:{port}/x"), {"order_id": "1"})
    assert not result.ok and "Could not reach the webhook" in result.error


async def test_templated_url_that_breaks_is_an_error(caller):
    t = tool("http://127.0.0.1:1/x?id={{order_id}}")
    t["server"]["url"] = "http://127.0.0.1:{{order_id}}/x"  # as if stored before validation existed
    result = await caller.call(t, {"order_id": "abc"})
    assert not result.ok and result.error.startswith("Invalid webhook URL")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "169.254.169.254"])
async def test_private_destinations_refused_without_the_setting(webhook, host):
    hooks = WebhookCaller(allow_private=False, timeout=2)
    port = webhook.base_url.rsplit(":", 1)[1]
    try:
        result = await hooks.call(tool(f"http://{host}:{port}/hook/x"), {"order_id": "1"})
    finally:
        await hooks.aclose()
    assert not result.ok
    assert result.error.startswith("Webhook refused")
    assert webhook.requests == []


async def test_each_guard_refusal_is_reported_for_the_metrics(webhook):
    refused: list[None] = []
    hooks = WebhookCaller(allow_private=False, timeout=2, on_refused=lambda: refused.append(None))
    port = webhook.base_url.rsplit(":", 1)[1]
    try:
        for host in ("127.0.0.1", "[::1]"):
            assert not (await hooks.call(tool(f"http://{host}:{port}/hook/x"), {"order_id": "1"})).ok
    finally:
        await hooks.aclose()
    assert len(refused) == 2 and webhook.requests == []


async def test_private_allowed_with_the_setting(webhook, caller):
    result = await caller.call(tool(f"{webhook.base_url}/hook/x"), {"order_id": "1"})
    assert result.ok and len(webhook.requests) == 1


async def test_redirect_hops_are_checked_again(webhook, monkeypatch):
    """Test double for DNS: the webhook's own 127.0.0.1 address counts as public here, so the first hop
    goes through; the redirect to a private address must still be refused."""
    port = int(webhook.base_url.rsplit(":", 1)[1])

    async def fake_check(host: str, p: int):
        if host == "127.0.0.1" and p == port:
            return [ipaddress.ip_address("127.0.0.1")]
        return await checked_addresses(host, p)

    monkeypatch.setattr(netguard, "checked_addresses", fake_check)
    hooks = WebhookCaller(allow_private=False, timeout=3)
    try:
        ok = await hooks.call(tool(f"{webhook.base_url}/redirect?to=/hook/after"), {"order_id": "1"})
        bad = await hooks.call(tool(f"{webhook.base_url}/redirect?to=http://10.9.9.9/steal&code=307"),
                               {"order_id": "1"})
    finally:
        await hooks.aclose()
    assert ok.ok and ok.url.endswith("/hook/after")
    assert webhook.requests[0]["method"] == "GET"  # 302 after POST becomes GET
    assert not bad.ok and bad.error == "Webhook refused: The webhook URL is not allowed."
    assert "10.9.9.9" in bad.refused  # why, for the operator; the agent's text names no address


async def test_redirect_to_a_nat64_form_of_a_private_address_is_refused(webhook, monkeypatch):
    """The first hop counts as public (test double for DNS); its redirect to 64:ff9b::a9fe:a9fe (NAT64 for
    169.254.169.254, cloud metadata) must be refused, and the text the agent sees must not say where it led."""
    port = int(webhook.base_url.rsplit(":", 1)[1])

    async def fake_check(host: str, p: int):
        if host == "127.0.0.1" and p == port:
            return [ipaddress.ip_address("127.0.0.1")]
        return await checked_addresses(host, p)

    monkeypatch.setattr(netguard, "checked_addresses", fake_check)
    hooks = WebhookCaller(allow_private=False, timeout=3)
    try:
        bad = await hooks.call(tool(f"{webhook.base_url}/redirect?to=http://[64:ff9b::a9fe:a9fe]/latest&code=302"),
                               {"order_id": "1"})
    finally:
        await hooks.aclose()
    assert not bad.ok and "169" not in json.dumps(bad.for_llm()) and "ff9b" not in json.dumps(bad.for_llm())
    assert webhook.requests == []


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
     ("172.16.5.4", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
     ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True), ("2002:c0a8:0101::1", False),
     # NAT64 (RFC 6052) leads to the embedded IPv4 address; local-use NAT64 (RFC 8215) is site-specific
     ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True),
     ("64:ff9b:1::808:808", False), ("64:ff9b:1::1", False),
     # IPv4-compatible (deprecated "::a.b.c.d") and site-local (fec0::/10)
     ("::a9fe:a9fe", False), ("::7f00:1", False), ("fec0::1", False), ("feff::1", False),
     ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False)],  # Teredo
)
def test_address_policy(address, allowed):
    assert address_allowed(ipaddress.ip_address(address)) is allowed


async def test_request_goes_to_the_checked_address_with_the_name_in_host(webhook, monkeypatch):
    """Test double for DNS: hooks.example "resolves" to the webhook's 127.0.0.1 and passes the check. The
    connection must go to that checked address (no second lookup) while Host keeps the name."""
    port = int(webhook.base_url.rsplit(":", 1)[1])
    looked_up: list[str] = []

    async def fake_check(host: str, p: int):
        looked_up.append(host)
        return [ipaddress.ip_address("127.0.0.1")] if host == "hooks.example" else []

    monkeypatch.setattr(netguard, "checked_addresses", fake_check)
    hooks = WebhookCaller(allow_private=False, timeout=3)
    try:
        result = await hooks.call(tool(f"http://hooks.example:{port}/hook/pinned"), {"order_id": "1"})
        pinned, _, host = await netguard.pin_url(httpx.URL("https://hooks.example/x"), allow_private=False)
    finally:
        await hooks.aclose()
    assert result.ok, result.error  # hooks.example does not exist: only the pinned address could answer
    assert webhook.requests[0]["headers"]["host"] == f"hooks.example:{port}"
    assert looked_up[0] == "hooks.example"
    assert str(pinned) == "https://127.0.0.1/x" and host == "hooks.example"


async def test_ipv6_address_is_bracketed_when_pinned(monkeypatch):
    async def fake_check(host: str, p: int):
        return [ipaddress.ip_address("2606:4700:4700::1111")]

    monkeypatch.setattr(netguard, "checked_addresses", fake_check)
    pinned, extensions, host = await netguard.pin_url(httpx.URL("https://hooks.example:8443/x?a=1"),
                                                      allow_private=False)
    assert str(pinned) == "https://[2606:4700:4700::1111]:8443/x?a=1"
    assert extensions == {"sni_hostname": "hooks.example"} and host == "hooks.example:8443"
