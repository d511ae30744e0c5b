"""Validation and normalisation of tool bodies for `POST /tools` and `PATCH /tools/{id}`.

`validate_tool(body)` returns the tool as it is stored; `validate_tool_patch(existing, patch)` applies
a PATCH (top-level fields replace the stored ones; `request` is replaced as a whole, as the seed says)
and validates the result. Both raise `ToolValidationError(field, message)`, which the API answers as
`VALIDATION_ERROR` naming the field.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from presets.catalog import accepted_types, get_preset
from presets.templating import PLACEHOLDER, WHOLE_PLACEHOLDER, placeholders

TOOL_TYPES = ("server", "client")
EXECUTION_MODES = ("blocking", "fire_and_forget")
CHANNELS = ("voice_web", "voice_telephony", "chat", "whatsapp")
DEFAULT_CHANNELS = ["voice_web", "voice_telephony"]
HTTP_METHODS = ("POST", "GET", "PUT", "PATCH", "DELETE")
PARAMETER_TYPES = ("string", "number", "integer", "boolean", "array", "object", "enum")
MAX_TIMEOUT_S = 600.0

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_REF_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_KNOWN_KEYS = {
    "name", "description", "ref_code", "type", "execution_mode", "channels", "parameters",
    "server", "request", "client_fields", "timeout_seconds",
}


class ToolValidationError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def ref_code_from_name(name: str) -> str:
    """snake_case slug: "Check Order-Status!" → "check_order_status"."""
    slug = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    slug = re.sub(r"[^A-Za-z0-9]+", "_", slug).strip("_").lower()
    return slug[:64].rstrip("_")


def validate_tool(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ToolValidationError("body", "must be a JSON object")
    tool_type = body.get("type")
    if tool_type not in TOOL_TYPES:
        raise ToolValidationError("type", 'must be "server" or "client"')

    name = _required_text(body, "name")
    description = _required_text(body, "description")
    ref_code = body.get("ref_code")
    if ref_code in (None, ""):
        ref_code = ref_code_from_name(name)
        if not ref_code:
            raise ToolValidationError("name", "needs at least one letter or digit to derive ref_code")
    elif not isinstance(ref_code, str) or not _REF_CODE.match(ref_code):
        raise ToolValidationError("ref_code", "letters, digits, _ and - only, at most 64 characters")

    parameters = _parameters(body.get("parameters"))
    declared = {p["name"] for p in parameters}
    client_fields = _client_fields(body.get("client_fields")) if tool_type == "client" else None
    preset = get_preset(client_fields["preset_id"]) if client_fields and "preset_id" in client_fields else None

    mode = body.get("execution_mode")
    if mode is None:
        mode = preset.execution_mode if preset else ("blocking" if tool_type == "server" else "fire_and_forget")
    elif mode not in EXECUTION_MODES:
        raise ToolValidationError("execution_mode", 'must be "blocking" or "fire_and_forget"')

    tool: dict[str, Any] = {
        "name": name,
        "description": description,
        "ref_code": ref_code,
        "type": tool_type,
        "execution_mode": mode,
        "channels": _channels(body.get("channels")),
        "parameters": parameters,
    }
    timeout = body.get("timeout_seconds")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
            raise ToolValidationError("timeout_seconds", f"must be a number of seconds in (0, {MAX_TIMEOUT_S:g}]")
        tool["timeout_seconds"] = float(timeout)

    if tool_type == "server":
        tool["server"] = _server(body.get("server"), declared)
        request = body.get("request")
        if request is not None:
            tool["request"] = _request(request, declared)
    else:
        tool["client_fields"] = client_fields
    return tool


def validate_tool_patch(existing: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, Mapping):
        raise ToolValidationError("body", "must be a JSON object")
    merged = {k: v for k, v in existing.items() if k in _KNOWN_KEYS}
    if "name" in patch and "ref_code" not in patch and existing.get("ref_code"):
        merged["ref_code"] = existing["ref_code"]  # renaming keeps the code the agent calls
    if "type" in patch and patch["type"] != existing.get("type"):
        # switching kinds drops the other kind's fields unless re-sent
        for key in ("server", "request", "client_fields", "execution_mode"):
            if key not in patch:
                merged.pop(key, None)
    merged.update({k: v for k, v in patch.items() if k in _KNOWN_KEYS})
    return validate_tool(merged)


# ---- parts ----------------------------------------------------------------------------------------

def _required_text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolValidationError(key, "is required (a non-empty string)")
    return value.strip()


def _channels(value: Any) -> list[str]:
    if value is None:
        return list(DEFAULT_CHANNELS)
    if not isinstance(value, list) or not value:
        raise ToolValidationError("channels", f"must be a non-empty list of {', '.join(CHANNELS)}")
    out: list[str] = []
    for i, channel in enumerate(value):
        if channel not in CHANNELS:
            raise ToolValidationError(f"channels[{i}]", f"must be one of {', '.join(CHANNELS)}")
        if channel not in out:
            out.append(channel)
    return out


def _parameters(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ToolValidationError("parameters", "must be a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"parameters[{i}]"
        if not isinstance(item, Mapping):
            raise ToolValidationError(where, "must be an object {name, type, description, required, enum}")
        name = item.get("name")
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise ToolValidationError(f"{where}.name", "letters, digits, _ and - (starting with a letter or _)")
        if name in seen:
            raise ToolValidationError(f"{where}.name", f"duplicate parameter {name!r}")
        seen.add(name)
        ptype = item.get("type", "string")
        if ptype not in PARAMETER_TYPES:
            raise ToolValidationError(f"{where}.type", f"must be one of {', '.join(PARAMETER_TYPES)}")
        param: dict[str, Any] = {"name": name, "type": ptype}
        description = item.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise ToolValidationError(f"{where}.description", "must be a string")
            param["description"] = description
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise ToolValidationError(f"{where}.required", "must be true or false")
        param["required"] = required
        enum = item.get("enum")
        if enum is not None:
            if not isinstance(enum, list) or not enum or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in enum
            ):
                raise ToolValidationError(f"{where}.enum", "must be a non-empty list of strings or numbers")
            if ptype in ("string", "enum") and not all(isinstance(v, str) for v in enum):
                raise ToolValidationError(f"{where}.enum", f"values must be strings for type {ptype}")
            param["enum"] = list(enum)
        elif ptype == "enum":
            raise ToolValidationError(f"{where}.enum", 'is required when type is "enum"')
        items = item.get("items")
        if items is not None:
            if ptype != "array" or not isinstance(items, Mapping):
                raise ToolValidationError(f"{where}.items", "is a JSON schema object, for array parameters only")
            param["items"] = dict(items)
        out.append(param)
    return out


def _check_placeholders(value: Any, declared: set[str], where: str) -> None:
    for path, name in placeholders(value):
        if name not in declared:
            field = f"{where}.{path}" if path else where
            raise ToolValidationError(field, f"{{{{{name}}}}} names no parameter of this tool")


def _server(value: Any, declared: set[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ToolValidationError("server.url", 'is required for type "server"')
    url = value.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ToolValidationError("server.url", 'is required for type "server"')
    url = url.strip()
    parts = urlsplit(PLACEHOLDER.sub("x", url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolValidationError("server.url", "must be an absolute http:// or https:// URL")
    if PLACEHOLDER.search(url.split("://", 1)[1].split("/", 1)[0]):
        raise ToolValidationError("server.url", "the host cannot be templated")
    _check_placeholders(url, declared, "server.url")
    method = str(value.get("method") or "POST").upper()
    if method not in HTTP_METHODS:
        raise ToolValidationError("server.method", f"must be one of {', '.join(HTTP_METHODS)}")
    return {"url": url, "method": method}


def _request(value: Any, declared: set[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ToolValidationError("request", "must be an object {body, headers, query}")
    out: dict[str, Any] = {}
    for key in value:
        if key not in ("body", "headers", "query"):
            raise ToolValidationError(f"request.{key}", "is not one of body, headers, query")
    if "body" in value:
        _check_placeholders(value["body"], declared, "request.body")
        out["body"] = value["body"]
    for key in ("headers", "query"):
        part = value.get(key)
        if part is None:
            out[key] = {}
            continue
        if not isinstance(part, Mapping):
            raise ToolValidationError(f"request.{key}", "must be an object")
        for k, v in part.items():
            if key == "headers" and not isinstance(v, str | int | float | bool):
                raise ToolValidationError(f"request.headers.{k}", "must be a string")
        _check_placeholders(part, declared, f"request.{key}")
        out[key] = dict(part)
    return out


def _client_fields(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ToolValidationError("client_fields", "must be an object")
    fields = dict(value)
    preset_id = fields.get("preset_id")
    if preset_id is None:
        return fields
    preset = get_preset(preset_id) if isinstance(preset_id, str) else None
    if preset is None:
        raise ToolValidationError("client_fields.preset_id", f"unknown preset {preset_id!r}")
    for key, item in fields.items():
        if key == "preset_id":
            continue
        types = accepted_types(preset_id, key)
        if not types or (isinstance(item, str) and WHOLE_PLACEHOLDER.match(item)) or item is None:
            continue  # extra keys pass through; a whole placeholder is typed at call time
        if not any(_is_type(item, t) for t in types):
            raise ToolValidationError(f"client_fields.{key}", f"must be {' or '.join(types)} for {preset_id}")
    return fields


def _is_type(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list)
    return isinstance(value, Mapping)
