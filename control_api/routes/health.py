"""Liveness: `GET /health` → {"status": "ok"}, no auth (load balancers and tests poll it)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


routes = [Route("/health", health, methods=["GET"])]
