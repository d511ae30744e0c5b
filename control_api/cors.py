"""CORS for the endpoints browsers call from customers' sites.

Only these paths are cross-origin: `/calls/create`, `/discovery/ice-servers`, the worker URL `/webrtc…` and
`/media/upload…`. Preflights (OPTIONS with Access-Control-Request-Method) are answered here, before routing
and auth; responses get `Access-Control-Allow-Origin` echoing the caller's origin. Whether a publishable key
may be used from that origin is decided per key in auth (ORIGIN_NOT_ALLOWED), so CORS itself stays open.
Auth travels in headers, never cookies, so no credentials mode is needed.
"""
from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXACT_PATHS = frozenset({"/calls/create", "/discovery/ice-servers"})
PREFIX_PATHS = ("/webrtc", "/media/upload")
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, X-API-Key, Authorization"
MAX_AGE = "600"


def is_cross_origin_path(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return path in EXACT_PATHS or any(path == p or path.startswith(p + "/") for p in PREFIX_PATHS)


class BrowserCORSMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_cross_origin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = Response(status_code=204, headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
            })
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)
