"""`{{param}}` resolution for client_fields and server-tool requests.

Rules (docs/tools.md):
- a value that is exactly one placeholder becomes the argument itself, keeping its JSON type
  (`"{{count}}"` with count=3 → 3, a list stays a list);
- placeholders inside a longer string are replaced by the argument as text (strings as they are,
  everything else as JSON: true, 3.5, ["a"]);
- a placeholder naming a declared parameter the agent left out resolves to null (whole value) or ""
  (inside a string);
- a placeholder naming no declared parameter stays as it is (e.g. the calendar preset's `{{date}}`,
  which the browser fills);
- static values, and dict keys, are never touched; dicts and lists are walked recursively.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any
from urllib.parse import quote as url_quote

from presets.catalog import get_preset

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\}\}")
WHOLE_PLACEHOLDER = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\}\}\s*$")


def placeholders(value: Any) -> Iterator[tuple[str, str]]:
    """Yield (path, name) for every placeholder in a nested value; path like `body.items[0].id`."""
    yield from _walk_placeholders(value, "")


def _walk_placeholders(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        for m in PLACEHOLDER.finditer(value):
            yield path, m.group(1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_placeholders(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_placeholders(item, f"{path}[{i}]")


def as_text(value: Any) -> str:
    """How an argument reads inside a longer string: strings verbatim, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def resolve(
    value: Any,
    arguments: Mapping[str, Any],
    declared: Collection[str],
    *,
    quote: Callable[[str], str] | None = None,
) -> Any:
    """Resolve placeholders in `value` (see module docstring). `quote` post-processes inline text
    (URL-quoting for a templated URL)."""
    if isinstance(value, str):
        whole = WHOLE_PLACEHOLDER.match(value)
        if whole and whole.group(1) in declared and quote is None:
            return arguments.get(whole.group(1))

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in declared:
                return m.group(0)
            text = as_text(arguments.get(name))
            return quote(text) if quote else text

        return PLACEHOLDER.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: resolve(v, arguments, declared, quote=quote) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, arguments, declared, quote=quote) for v in value]
    return value


def parameter_names(tool: Mapping[str, Any]) -> list[str]:
    return [p["name"] for p in tool.get("parameters") or [] if isinstance(p, Mapping) and "name" in p]


def provided_arguments(tool: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's arguments restricted to the tool's declared parameters (extra keys dropped)."""
    names = parameter_names(tool)
    return {n: arguments[n] for n in names if n in arguments}


def client_arguments(tool: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The `arguments` object of a client_tool_call.

    Custom tools: the resolved `client_fields`; when it is omitted or empty, each parameter maps to
    the same key. Presets: the resolved `client_fields`, then every declared parameter the agent
    filled overrides the static value of the same key (unless the preset marks that field fixed),
    plus `agent_arguments` — the agent's own arguments, so the UI can show e.g. why it asks.
    `preset_id` is never overridden.
    """
    declared = parameter_names(tool)
    provided = provided_arguments(tool, arguments)
    fields = tool.get("client_fields") or {}
    if not fields:
        return provided
    resolved = resolve(dict(fields), arguments, declared)
    preset_id = fields.get("preset_id")
    preset = get_preset(preset_id) if isinstance(preset_id, str) else None
    if preset is None:
        return resolved
    for name, value in provided.items():
        spec = preset.field(name)
        if name == "preset_id" or (spec is not None and spec.fixed):
            continue
        resolved[name] = value
    resolved["preset_id"] = preset_id
    resolved["agent_arguments"] = provided
    return resolved


def server_request(tool: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """url, method, body, headers, query of a server tool's webhook call, resolved.

    `request` omitted → the declared parameters the agent filled go to the body by name (to the query
    for GET). Header and query values are sent as text; placeholders in the URL are percent-encoded.
    """
    declared = parameter_names(tool)
    server = tool.get("server") or {}
    method = str(server.get("method") or "POST").upper()
    url = resolve(server.get("url", ""), arguments, declared, quote=lambda s: url_quote(s, safe=""))
    request = tool.get("request")
    if request is None:
        body: Any = provided_arguments(tool, arguments)
        headers: dict[str, Any] = {}
        query: dict[str, Any] = {}
        if method == "GET":  # a GET carries no body: the arguments go to the query string
            body, query = None, body
    else:
        body = resolve(request.get("body"), arguments, declared)
        headers = resolve(request.get("headers") or {}, arguments, declared)
        query = resolve(request.get("query") or {}, arguments, declared)
    return {
        "url": url,
        "method": method,
        "body": body,
        "headers": {str(k): as_text(v) for k, v in headers.items()},
        "query": {str(k): (as_text(v) if not isinstance(v, list) else [as_text(i) for i in v])
                  for k, v in query.items() if v is not None},
    }
