"""Stored tools (plain dicts, as `presets.validation` returns them) → OpenAI function definitions."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_JSON_TYPES = {"enum": "string"}


def function_name(tool: Mapping[str, Any]) -> str:
    """The name the LLM calls: ref_code (always a valid function name) or, lacking it, the name."""
    return str(tool.get("ref_code") or tool["name"])


def parameter_schema(parameters: list[Mapping[str, Any]]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in parameters:
        prop: dict[str, Any] = {"type": _JSON_TYPES.get(p.get("type", "string"), p.get("type", "string"))}
        if p.get("description"):
            prop["description"] = p["description"]
        if p.get("enum"):
            prop["enum"] = list(p["enum"])
        if p.get("items"):
            prop["items"] = dict(p["items"])
        properties[p["name"]] = prop
        if p.get("required"):
            required.append(p["name"])
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def llm_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": function_name(tool),
            "description": str(tool.get("description") or ""),
            "parameters": parameter_schema(list(tool.get("parameters") or [])),
        },
    }
