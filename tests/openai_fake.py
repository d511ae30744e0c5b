"""Test double: a real local HTTP server that speaks the OpenAI Chat Completions protocol.

It is a real Starlette app on uvicorn bound to 127.0.0.1 on a free port, so the code under test talks to
it over real sockets exactly as it would talk to Ollama, vLLM, llama.cpp server or OpenAI. It records
every request (body and headers) and answers from a script: a queue of replies, each text (streamed as
several deltas) or tool calls (streamed the way OpenAI streams them: `delta.tool_calls[i]` carrying id,
type and name first, then argument fragments), an HTTP error, or any of these after a delay. When the
queue is empty it answers `default_text`.

Use the `openai_fake` fixture (function scoped) or `async with OpenAIFake() as fake:`:

    fake.add_text("Hello there. How can I help?")
    fake.add_tool_calls(("get_weather", {"city": "Paris"}))
    fake.add_error(500)
    llm = OpenAICompatLLM(fake.base_url, fake.api_key, "fake-model", timeout=5)
    ...
    assert fake.requests[0].body["temperature"] == 0.3
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


@dataclass
class ScriptedReply:
    """One scripted answer to a chat completion.

    `text`: streamed in `chunk_count`-ish deltas; `tool_calls`: list of (name, arguments) where arguments is a
    dict (sent as JSON) or a raw string (to test malformed arguments); `status` != 200: an error reply with
    an OpenAI-style error body; `delay`: seconds before the response starts; `chunk_delay`: seconds between
    streamed chunks (use it to test cancellation mid-stream).
    """

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_count: int = 4


def split_pieces(text: str, count: int) -> list[str]:
    """Split `text` into about `count` non-empty pieces whose concatenation is `text`."""
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i:i + size] for i in range(0, len(text), size)]


class OpenAIFake:
    def __init__(self, *, models: list[str] | None = None, api_key: str = "sk-test-fake",
                 require_key: bool = False, default_text: str = "Hello from the fake model.") -> None:
        self.models = list(models) if models is not None else ["fake-model", "fake-model-large"]
        self.api_key = api_key
        self.require_key = require_key
        self.default_text = default_text
        self.models_status = 200  # set to 500 to make GET /v1/models fail
        self.requests: list[RecordedRequest] = []
        self.script: deque[ScriptedReply] = deque()
        self.streams_finished = 0  # streamed replies sent to the end
        self.streams_aborted = 0  # streamed replies whose client went away before the end
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self.app = Starlette(routes=[
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ])

    # ---- scripting -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def add(self, reply: ScriptedReply) -> None:
        self.script.append(reply)

    def add_text(self, text: str, **options: Any) -> None:
        self.add(ScriptedReply(text=text, **options))

    def add_tool_calls(self, *calls: tuple[str, dict[str, Any] | str], text: str | None = None,
                       **options: Any) -> None:
        self.add(ScriptedReply(text=text, tool_calls=list(calls), **options))

    def add_error(self, status: int = 500, **options: Any) -> None:
        self.add(ScriptedReply(status=status, **options))

    # ---- server --------------------------------------------------------------------------------

    async def start(self) -> "OpenAIFake":
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 30
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises why uvicorn could not start
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 10)
            except asyncio.TimeoutError:
                self._server.force_exit = True
                await asyncio.wait_for(self._task, 5)
        self._server = self._task = None

    async def __aenter__(self) -> "OpenAIFake":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- handlers ------------------------------------------------------------------------------

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        self.requests.append(rec)
        return rec

    def _unauthorized(self, request: Request) -> Response | None:
        if self.require_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        return None

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if self.models_status != 200:
            return _error(self.models_status, "models listing failed", "server_error")
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})

    async def _chat(self, request: Request) -> Response:
        rec = await self._record(request)
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if not isinstance(rec.body, dict) or not isinstance(rec.body.get("messages"), list):
            return _error(400, "'messages' is required", "invalid_request_error")
        reply = self.script.popleft() if self.script else ScriptedReply(text=self.default_text)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return _error(reply.status, f"scripted failure {reply.status}", "server_error")
        model = rec.body.get("model", "fake-model")
        if rec.body.get("stream"):
            return StreamingResponse(self._sse(reply, model), media_type="text/event-stream")
        return JSONResponse(_completion(reply, model))

    async def _sse(self, reply: ScriptedReply, model: str) -> AsyncIterator[bytes]:
        finished = False
        try:
            for chunk in _stream_chunks(reply, model):
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            if finished:
                self.streams_finished += 1
            else:
                self.streams_aborted += 1


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status_code=status)


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _stream_chunks(reply: ScriptedReply, model: str) -> list[dict[str, Any]]:
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    for piece in split_pieces(reply.text or "", reply.chunk_count):
        chunks.append(_chunk(model, {"content": piece}))
    for index, (name, arguments) in enumerate(reply.tool_calls):
        chunks.append(_chunk(model, {"tool_calls": [{
            "index": index, "id": f"call_fake_{index}", "type": "function",
            "function": {"name": name, "arguments": ""}}]}))
        for piece in split_pieces(_arguments_text(arguments), reply.chunk_count):
            chunks.append(_chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(_chunk(model, {}, "tool_calls" if reply.tool_calls else "stop"))
    return chunks


def _completion(reply: ScriptedReply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_fake_{i}", "type": "function",
             "function": {"name": name, "arguments": _arguments_text(arguments)}}
            for i, (name, arguments) in enumerate(reply.tool_calls)]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


@pytest_asyncio.fixture
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    """A running OpenAIFake for one test; `fake.base_url` ends in /v1."""
    async with OpenAIFake() as fake:
        yield fake
