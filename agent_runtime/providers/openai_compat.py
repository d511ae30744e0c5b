"""LLM provider `OPENAI`: any OpenAI-compatible Chat Completions endpoint (OpenAI, Groq, Ollama, vLLM,
llama.cpp server), streamed over SSE with httpx. The named providers `GROQ` and `AZURE` are this same client
with another URL and authentication header (see `azure_openai.py`, `groq.py`).

Tool calls arrive in fragments (`delta.tool_calls[i]`: id and name first, then pieces of the JSON
arguments); they are assembled by index and yielded as one `ToolCallRequest` each when complete, that is
when a later index starts or the stream finishes. Arguments that are not a JSON object raise
`ProviderError`: running a tool with invented arguments is worse than failing the turn, which the
conversation recovers from. Empty arguments (some servers send "" for tools without parameters) are `{}`.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from .base import LLMChunk, ProviderError, TextDelta, ToolCallRequest
from .pool import client as _client

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open the connection, whatever the read timeout


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

    `timeout` bounds each read (so a stalled stream fails instead of hanging the turn), connecting takes
    at most `connect_timeout`, and the first content (text or tool call) must come within
    `first_result_timeout` (default `timeout`) even when the endpoint keeps the stream alive with comments.
    A 200 answer that is not an event stream is a `ProviderError`, not an empty reply.
    `url` and `headers` replace the `{base_url}/chat/completions` URL and the Bearer header for vendors that
    address and authenticate differently (Azure OpenAI). Messages pass through unchanged, so image content
    parts reach vision-capable models.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str, timeout: float = 30.0,
                 max_tokens: int | None = None, *, url: str | None = None,
                 headers: Mapping[str, str] | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 first_result_timeout: float | None = None, vendor: str = "OPENAI") -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.url = url or self.base_url + "/chat/completions"
        self.headers = dict(headers) if headers is not None else _headers(api_key)
        self.connect_timeout = min(connect_timeout, timeout)
        self.first_result_timeout = first_result_timeout if first_result_timeout is not None else timeout
        self.vendor = vendor
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}  # over this instance's replies, where reported

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
        url = self.url
        body = self._body(messages, tools, temperature, top_p)
        assembler = _ToolCallAssembler()
        timeout = httpx.Timeout(self.timeout, connect=self.connect_timeout)
        started = time.monotonic()
        produced = False
        try:
            async with _client().stream("POST", url, json=body, headers=self.headers,
                                        timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise ProviderError(
                        f"{self.model} at {url}: HTTP {response.status_code} {_error_detail(response)}")
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    await response.aread()
                    raise ProviderError(f"{self.model} at {url}: HTTP 200 but not an event stream "
                                        f"({kind or 'no type'}): {response.text[:120]!r}")
                async for line in response.aiter_lines():
                    if not produced and time.monotonic() - started > self.first_result_timeout:
                        raise ProviderError(f"{self.model} at {url}: nothing said within "
                                            f"{self.first_result_timeout:g} s")
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event: lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    for chunk in self._parse(data, assembler):
                        produced = True
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
        usage = event.get("usage")
        if isinstance(usage, dict):  # sent in the last event by servers that report it (OpenAI, Azure, Groq)
            self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
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
