"""What post-call analysis extracts: one field per active `data_collection` parameter (and per entry of the agent's
`input_needed_json_format`), its JSON schema for the model, and the check each answered value must pass. Pure.

A value is kept only when it has the field's type: `string` a non-empty string, `number` a finite number (not a
boolean), `boolean` true/false, `enum` one of `enum_values` (matched ignoring case, stored as listed), `date` an
ISO date `YYYY-MM-DD`. Anything else, and null, is dropped: the record never holds a value of the wrong type.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

DATA_TYPES = ("string", "number", "boolean", "enum", "date")
# Prospect (lead) columns a parameter may write with `store_to_prospect` + `prospect_column_name`.
PROSPECT_COLUMNS = frozenset({"name", "email_id", "alternate_phone_number", "alternate_email_id", "status",
                              "remarks"})

JsonValue = str | int | float | bool
JsonSchema = dict[str, object]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    prompt: str
    data_type: str = "string"
    enum_values: tuple[str, ...] = ()
    store_to_prospect: bool = False
    prospect_column: str | None = None
    store_to_prospect_data: bool = False
    prospect_data_key: str | None = None


class Dropped:
    """A value that failed its field's check."""


DROPPED = Dropped()


def schema_of(spec: FieldSpec) -> JsonSchema:
    """The JSON schema of one field's answer (null when the transcript does not say)."""
    described: JsonSchema = {"description": spec.prompt}
    if spec.data_type == "enum" and spec.enum_values:
        return {**described, "enum": [*spec.enum_values, None]}
    kind = {"number": "number", "boolean": "boolean"}.get(spec.data_type, "string")
    if spec.data_type == "date":
        described["format"] = "date"
    return {**described, "type": [kind, "null"]}


def check(spec: FieldSpec, value: object) -> JsonValue | Dropped:
    """`value` as stored when it has the field's type, else DROPPED."""
    if spec.data_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return DROPPED
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if spec.data_type == "boolean":
        return value if isinstance(value, bool) else DROPPED
    if not isinstance(value, str) or not value.strip():
        return DROPPED
    text = value.strip()
    if spec.data_type == "enum":
        for allowed in spec.enum_values:
            if allowed.lower() == text.lower():
                return allowed
        return DROPPED
    if spec.data_type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            return DROPPED
    return text


def _text(item: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = item.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def fields_from_input_format(items: Iterable[object], taken: Iterable[str] = ()) -> list[FieldSpec]:
    """Fields named by an agent's `input_needed_json_format`: the shape the extraction returns, beyond its
    data-collection parameters. Each entry is a key (`"budget"`) or an object `{key|name, type|data_type,
    description|prompt, enum_values|enum}`; keys already taken by a parameter, and malformed entries, are skipped.
    These land in `call_data` only."""
    seen = set(taken)
    specs: list[FieldSpec] = []
    for item in items:
        if isinstance(item, str):
            item = {"key": item}
        if not isinstance(item, Mapping):
            continue
        key = _text(item, "key", "name", "field")
        if key is None or key in seen:
            continue
        data_type = (_text(item, "data_type", "type") or "string").lower()
        enum = item.get("enum_values", item.get("enum"))
        values = tuple(str(v) for v in enum) if isinstance(enum, list) else ()
        if data_type not in DATA_TYPES or (data_type == "enum" and not values):
            data_type = "string"
        seen.add(key)
        specs.append(FieldSpec(key, _text(item, "description", "prompt") or f"The value of {key}.", data_type,
                               values))
    return specs
