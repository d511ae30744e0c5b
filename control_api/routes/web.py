"""The browser side: the demo page (`GET /`), the JS client (`GET /sdk/…`) and the demo page's config.

`/sdk/talkwire.js` is an ES module that customers import from their own sites, and browsers fetch module
scripts in CORS mode, so files under /sdk are served with `Access-Control-Allow-Origin: *` (they are
public and carry no credentials). `GET /demo/config` hands the demo page the default client's
publishable key (public by design: it ships in web pages) and its agents.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from control_api.errors import ApiError
from control_api.storage.agents import active_agent_names

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SDK_DIR = STATIC_DIR / "sdk"

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


def _sdk_files() -> dict[str, Path]:
    """Every file the SDK folder ships, by its path under /sdk/. A request is looked up here, never on disk:
    no path from the network (`%00`, 5,000 characters, `..`) reaches the filesystem."""
    return {p.relative_to(SDK_DIR).as_posix(): p for p in sorted(SDK_DIR.rglob("*")) if p.is_file()}


SDK_FILES = _sdk_files()


async def sdk_file(request: Request) -> FileResponse:
    relative = request.path_params["path"]
    target = SDK_FILES.get(relative)
    if target is None:
        raise ApiError(404, "NOT_FOUND", "No such SDK file")
    return FileResponse(
        target,
        media_type=CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )


async def demo_config(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    rows = await active_agent_names(runtime.db, runtime.bootstrap.client_id)
    agents = [{"id": agent_id, "name": name} for agent_id, name in rows]
    return JSONResponse({"publishable_key": runtime.bootstrap.publishable_key, "agents": agents})


routes = [
    Route("/", index, methods=["GET"]),
    Route("/sdk/{path:path}", sdk_file, methods=["GET"]),
    Route("/demo/config", demo_config, methods=["GET"]),
]
