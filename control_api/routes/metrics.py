"""`GET /metrics`: the server's metrics in Prometheus text format (see control_api/metrics.py for each one).

No API key is asked for: the figures are process-wide aggregates (call counts, latencies, lags, CPU and
memory) with no tenant's data in them, and Prometheus scrapers rarely carry keys. On a server reachable
from outside, keep the path off the public listener (a reverse proxy rule) if even aggregates must stay
private.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control_api.metrics import CONTENT_TYPE


async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]
