"""A Starlette app on uvicorn at 127.0.0.1 on a free port: the base the HTTP vendor fakes share."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, form fields (dict) for multipart, or None
    files: dict[str, bytes]


class HttpFake:
    """Subclasses set `self.app`; `requests` records every request the app handled with `record()`."""

    app: Starlette

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def record(self, request: Request) -> Recorded:
        files: dict[str, bytes] = {}
        body: Any = None
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            body = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    body[key] = value
                else:
                    files[key] = await value.read()
        else:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        rec = Recorded(request.method, request.url.path, dict(request.query_params), dict(request.headers),
                       body, files)
        self.requests.append(rec)
        return rec

    async def start(self) -> HttpFake:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 30
        while not self._server.started:
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not start")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                self._server.force_exit = True
                await asyncio.wait_for(self._task, 5)
        self._server = self._task = None

    async def __aenter__(self) -> HttpFake:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
