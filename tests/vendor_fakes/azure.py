"""Test double: Azure OpenAI chat completions, on 127.0.0.1 on a free port.

`POST /openai/deployments/{deployment}/chat/completions?api-version=...` checks the `api-key` header and
that `api-version` is present, records the deployment, and streams OpenAI's chunk format (the scripting
of `openai_fake.OpenAIFake`: `add_text`, `add_tool_calls`, `add_error`). Faults: `not_a_stream` (a 200 JSON
completion to a streaming request), `keepalive_only_s` (SSE comments only, for that long, then text).
"""
from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from openai_fake import ScriptedReply, _completion, _error, _stream_chunks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vendor_fakes.http_server import HttpFake


class AzureOpenAIFake(HttpFake):
    def __init__(self, api_key: str = "azure-test-key", default_text: str = "Hello from Azure.") -> None:
        super().__init__()
        self.api_key = api_key
        self.default_text = default_text
        self.script: deque[ScriptedReply] = deque()
        self.not_a_stream = False
        self.keepalive_only_s = 0.0
        self.usage: dict[str, int] | None = None  # sent in a last chunk with no choices, as OpenAI does
        self.app = Starlette(routes=[
            Route("/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"])])

    @property
    def endpoint(self) -> str:
        return self.base_url

    def add_text(self, text: str, **options: Any) -> None:
        self.script.append(ScriptedReply(text=text, **options))

    def add_tool_calls(self, *calls: tuple[str, dict[str, Any] | str], text: str | None = None,
                       **options: Any) -> None:
        self.script.append(ScriptedReply(text=text, tool_calls=list(calls), **options))

    def add_error(self, status: int = 500, **options: Any) -> None:
        self.script.append(ScriptedReply(status=status, **options))

    async def _chat(self, request: Request) -> Response:
        rec = await self.record(request)
        if request.headers.get("api-key") != self.api_key:
            return _error(401, "Access denied due to invalid subscription key.", "invalid_request_error")
        if "api-version" not in rec.query:
            return _error(404, "Resource not found", "invalid_request_error")
        reply = self.script.popleft() if self.script else ScriptedReply(text=self.default_text)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return _error(reply.status, f"scripted failure {reply.status}", "server_error")
        model = request.path_params["deployment"]
        if self.not_a_stream or not rec.body.get("stream"):
            return JSONResponse(_completion(reply, model))
        return StreamingResponse(self._sse(reply, model), media_type="text/event-stream")

    async def _sse(self, reply: ScriptedReply, model: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.keepalive_only_s
        while loop.time() < until:
            yield b": keep-alive\n\n"
            await asyncio.sleep(0.05)
        for chunk in _stream_chunks(reply, model):
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        if self.usage is not None:
            yield f"data: {json.dumps({'id': 'chatcmpl-fake', 'choices': [], 'usage': self.usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"
