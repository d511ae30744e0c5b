"""Server tools: the agent's call becomes an HTTP request to the tool's webhook.

`server.url` + `server.method`, with `request.body/headers/query` templated from the arguments
(presets.templating.server_request; `request` omitted → arguments go to the body by name, or to the
query string for GET). One deadline (default 10 s) covers resolution, redirects and the whole
response. The response body — JSON, else text — is capped (default 16 KB) before the LLM sees it.
Every failure (blocked address, timeout, connection error, non-2xx) is a `WebhookResult` with an
error the agent can talk its way around, never an exception.

Destinations are checked by netguard.pin_url unless `allow_private`: the request is sent to the checked IP
(Host header and TLS SNI keep the name, so virtual hosts and certificates still work), redirects are
followed by hand (at most 3) and each hop is checked again; configured headers are not carried to
another origin.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agent_runtime.tools.netguard import BlockedDestination, pin_url, tls_context
from media.log_limit import LimitedLog
from presets.templating import server_request

log = logging.getLogger(__name__)
_refusals = LimitedLog(log)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "Talkwire-Webhook/0.1"


@dataclass(slots=True)
class WebhookResult:
    ok: bool
    status_code: int | None = None
    body: Any = None  # parsed JSON, or text
    truncated: bool = False
    error: str | None = None
    elapsed_ms: float = 0.0
    url: str | None = None  # the final URL (after redirects)
    refused: str | None = None  # why the address guard refused it (for the tool record, never for the LLM)

    def for_llm(self) -> Any:
        if self.ok:
            return self.body if self.body not in (None, "") else {"status": "success"}
        out: dict[str, Any] = {"status": "error", "error": self.error}
        if self.status_code is not None:
            out["status_code"] = self.status_code
        if self.body not in (None, ""):
            out["response"] = self.body
        return out


class WebhookCaller:
    """Shared by the tools of a call (or a worker): one httpx client, one policy."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        """`on_refused` is told of each request the address guard refuses (the server counts them)."""
        self.allow_private = allow_private
        self.on_refused = on_refused
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        # trust_env=False: a proxy from the environment would bypass the address check.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=transport,
                                         verify=tls_context(), headers={"User-Agent": USER_AGENT})

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, tool: Mapping[str, Any], arguments: Mapping[str, Any],
                   *, timeout: float | None = None) -> WebhookResult:
        spec = server_request(tool, arguments)
        deadline = timeout or tool.get("timeout_seconds") or self.timeout
        started = time.monotonic()
        result: WebhookResult
        try:
            async with asyncio.timeout(deadline):
                result = await self._send(spec, deadline)
        except TimeoutError:
            result = WebhookResult(False, error=f"The webhook did not answer within {deadline:g} s.")
        except BlockedDestination as exc:
            _refusals.log(logging.WARNING, ("webhook", exc.detail), "webhook refused: %s", exc.detail)
            if self.on_refused is not None:
                self.on_refused()
            result = WebhookResult(False, error=f"Webhook refused: {exc}", refused=exc.detail)
        except httpx.HTTPError as exc:
            result = WebhookResult(False, error=f"Could not reach the webhook: {type(exc).__name__}: {exc}")
        except (httpx.InvalidURL, ValueError) as exc:  # a templated URL that is no URL
            result = WebhookResult(False, error=f"Invalid webhook URL: {exc}")
        result.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        return result

    async def _send(self, spec: dict[str, Any], deadline: float) -> WebhookResult:
        method = spec["method"]
        url = httpx.URL(spec["url"])
        headers = dict(spec["headers"])
        params = spec["query"] or None
        body = spec["body"]
        content, json_body = _encode_body(body, headers)
        origin = (url.scheme, url.host, url.port)
        for _hop in range(MAX_REDIRECTS + 1):
            send_url, extensions, host_header = await pin_url(url, allow_private=self.allow_private)
            request_headers = dict(headers)
            if host_header:
                request_headers["Host"] = host_header
            request = self._client.build_request(
                method, send_url, params=params, headers=request_headers, content=content, json=json_body,
                timeout=deadline, extensions=extensions,
            )
            response = await self._client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    next_url = url.join(location)
                    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                        method, content, json_body = "GET", None, None
                    if (next_url.scheme, next_url.host, next_url.port) != origin:
                        headers = {}  # configured credentials stay with the configured origin
                    url, params = next_url, None
                    continue
                raw, truncated = await _read_capped(response, self.max_response_bytes)
                return WebhookResult(
                    ok=200 <= response.status_code < 300,
                    status_code=response.status_code,
                    body=_decode(raw, response.headers.get("content-type", ""), truncated, self.max_response_bytes),
                    truncated=truncated,
                    error=None if 200 <= response.status_code < 300
                    else f"The webhook answered HTTP {response.status_code}.",
                    url=str(url),
                )
            finally:
                await response.aclose()
        return WebhookResult(False, error=f"The webhook redirected more than {MAX_REDIRECTS} times.", url=str(url))


def _encode_body(body: Any, headers: dict[str, str]) -> tuple[bytes | None, Any]:
    """(content, json) for httpx: objects as JSON, text as text, nothing as nothing."""
    if body is None:
        return None, None
    if isinstance(body, str):
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return body.encode("utf-8"), None
    return None, body


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _decode(raw: bytes, content_type: str, truncated: bool, cap: int) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if truncated:
        return text + f"…[response truncated at {cap} bytes]"
    if "json" in content_type.lower() or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text
