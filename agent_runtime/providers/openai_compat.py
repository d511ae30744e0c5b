"""LLM provider `OPENAI`: any OpenAI-compatible Chat Completions endpoint (OpenAI, Groq, Ollama, vLLM,
llama.cpp server), streamed over SSE with httpx.

Tool calls arrive in fragments (`delta.tool_calls[i]`: id and name first, then pieces of the JSON
arguments); they are assembled by index and yielded as one `ToolCallRequest` each when complete, that is
when a later index starts or the stream finishes. Arguments that are not a JSON object raise
`ProviderError`: running a tool with invented arguments is worse than failing the turn, which the
conversation recovers from. Empty arguments (some servers send "" for tools without parameters) are `{}`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .base import LLMChunk, ProviderError, TextDelta, ToolCallRequest

log = logging.getLogger(__name__)


# One pooled client per event loop, shared by every call's LLM instance: a remote endpoint's TLS
# connection is reused from turn to turn instead of being set up again for each reply.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=20))
    return client


async def aclose_clients() -> None:
    """Close this loop's pooled client (server shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _error_detail(response: httpx.Response) -> str:
    """The endpoint's own error message when it sent one, else a short excerpt of the body."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except ValueError:
        pass
    return response.text[:200]


def as_openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Accept `{"type": "function", "function": {...}}` or a bare `{"name", "description", "parameters"}`."""
    if tool.get("type") == "function" and "function" in tool:
        return tool
    return {"type": "function", "function": tool}


async def list_models(base_url: str, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """Model ids from the endpoint's `GET /models` (the OpenAI shape `{"data": [{"id": ...}]}`)."""
    url = base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, headers=_headers(api_key))
    except httpx.HTTPError as exc:
        raise ProviderError(f"cannot list models at {url}: {exc!r}") from exc
    if response.status_code != 200:
        raise ProviderError(f"listing models at {url} failed: HTTP {response.status_code} {_error_detail(response)}")
    try:
        data = response.json()["data"]
        return [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"unexpected /models answer from {url}") from exc


class _ToolCallAssembler:
    """Collects streamed tool-call fragments by index; hands out the complete calls in index order."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, Any]] = {}

    def feed(self, fragment: dict[str, Any]) -> list[ToolCallRequest]:
        index = int(fragment.get("index", 0))
        ready = self.flush(below=index)
        part = self._parts.setdefault(index, {"id": "", "name": "", "arguments": []})
        if fragment.get("id"):
            part["id"] = fragment["id"]
        function = fragment.get("function") or {}
        if function.get("name"):
            part["name"] += function["name"]
        if function.get("arguments"):
            part["arguments"].append(function["arguments"])
        return ready

    def flush(self, below: int | None = None) -> list[ToolCallRequest]:
        done = sorted(i for i in self._parts if below is None or i < below)
        return [self._complete(self._parts.pop(i)) for i in done]

    @staticmethod
    def _complete(part: dict[str, Any]) -> ToolCallRequest:
        text = "".join(part["arguments"]).strip()
        if not part["name"]:
            raise ProviderError("the model sent a tool call without a function name")
        try:
            arguments = json.loads(text) if text else {}
        except ValueError as exc:
            raise ProviderError(f"tool call {part['name']!r} has malformed JSON arguments: {text[:120]!r}") from exc
        if not isinstance(arguments, dict):
            raise ProviderError(f"tool call {part['name']!r} arguments are not a JSON object")
        return ToolCallRequest(id=part["id"] or f"call_{part['name']}", name=part["name"], arguments=arguments)


class OpenAICompatLLM:
    """`LanguageModel` over an OpenAI-compatible `/chat/completions` endpoint.

    `timeout` bounds connecting and each read (so a stalled stream fails instead of hanging the turn).
    Messages pass through unchanged, so image content parts reach vision-capable models.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float = 30.0,
                 max_tokens: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens

    def _body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
              temperature: float | None, top_p: float | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if tools:
            body["tools"] = [as_openai_tool(t) for t in tools]
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[LLMChunk]:
        url = self.base_url + "/chat/completions"
        body = self._body(messages, tools, temperature, top_p)
        assembler = _ToolCallAssembler()
        try:
            async with _client().stream("POST", url, json=body, headers=_headers(self.api_key),
                                        timeout=self.timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise ProviderError(
                        f"{self.model} at {url}: HTTP {response.status_code} {_error_detail(response)}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    for chunk in self._parse(data, assembler):
                        yield chunk
            for call in assembler.flush():
                yield call
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.model} at {url}: {exc!r}") from exc

    def _parse(self, data: str, assembler: _ToolCallAssembler) -> list[LLMChunk]:
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise ProviderError(f"{self.model}: malformed stream event {data[:120]!r}") from exc
        if not isinstance(event, dict):
            raise ProviderError(f"{self.model}: malformed stream event {data[:120]!r}")
        if "error" in event:  # vLLM and llama.cpp server report mid-stream failures this way
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise ProviderError(f"{self.model}: {message}")
        out: list[LLMChunk] = []
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                out.append(TextDelta(content))
            for fragment in delta.get("tool_calls") or []:
                out.extend(assembler.feed(fragment))
            if choice.get("finish_reason"):
                out.extend(assembler.flush())
        return out
