"""The Starlette application: routes from every module in control_api/routes/, one error envelope, CORS.

Each module in control_api/routes/ exposes `routes: list[BaseRoute]`; adding a resource is adding a
module. Shared state lives on `request.app.state.runtime` (see control_api/runtime.py); what a call needs of
it is `runtime.services` (control_api/call_services.py).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from control_api import routes as routes_pkg
from control_api.cors import BrowserCORSMiddleware
from control_api.errors import EXCEPTION_HANDLERS
from control_api.runtime import Runtime
from control_api.settings import Settings


def collect_routes() -> list[BaseRoute]:
    collected: list[BaseRoute] = []
    for info in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes_pkg.__name__}.{info.name}")
        collected.extend(getattr(module, "routes", []))
    return collected


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Runtime.open(settings) as runtime:
            app.state.runtime = runtime
            yield

    app = Starlette(
        routes=collect_routes(),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(BrowserCORSMiddleware)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
