"""Pieces shared by every resource's edge models: base classes, E.164 numbers, the error envelope.

Request models ignore unknown keys (the seed's own examples send extras such as "sip_data.to");
response models describe exactly what the API returns, so the OpenAPI document generated from them
is what schemathesis checks every response against.
"""
from __future__ import annotations

import json
import re
import uuid
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

JSON_BODY = "json_body"  # validation context of a parsed JSON body: scalars must have their JSON types
E164_PATTERN = re.compile(r"^\+?[1-9]\d{6,14}$")


def _reject_nul(value: Any, where: str = "") -> None:
    """PostgreSQL text cannot hold U+0000, so no string anywhere in a request may contain it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'value'}: must not contain the NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, where)
            _reject_nul(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_nul(item, f"{where}.{i}" if where else str(i))


def _scalar(annotation: Any) -> type | None:
    """bool, int or float for `T` or `T | None`, else None."""
    if get_origin(annotation) in (Union, UnionType):
        args = set(get_args(annotation)) - {type(None)}
        annotation = args.pop() if len(args) == 1 else None
    return annotation if annotation in (bool, int, float) else None


def _json_type_error(kind: type, value: Any) -> str | None:
    """Why `value` is not of the JSON type the document gives a `kind` field (no "5" for 5, no 1 for true)."""
    if value is None:
        return None
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if kind is int and isinstance(value, float) and not value.is_integer():
        return "must be a whole number"
    return None


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):  # unknown keys are ignored, so only the declared fields are checked
            declared = {key: value for key, value in data.items() if key in cls.model_fields}
            _reject_nul(declared)
            if not (info.context or {}).get(JSON_BODY):
                return data  # a query string's values are all text
            for key, value in declared.items():  # the JSON types of the document: no 0 or "yes" for true
                kind = _scalar(cls.model_fields[key].annotation)
                problem = _json_type_error(kind, value) if kind is not None else None
                if problem:
                    raise ValueError(f"{key}: {problem}")
        else:
            _reject_nul(data)
        return data


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def normalise_e164(value: str) -> str:
    """'+918071387205', '918071387205' or '+91 80713 87205' → '+918071387205'; 7–15 digits, no leading 0."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    compact = re.sub(r"[\s\-().]", "", value)
    if not E164_PATTERN.match(compact):
        raise ValueError("must be an E.164 phone number: '+', country code and number, 7-15 digits")
    return compact if compact.startswith("+") else f"+{compact}"


# The document shows the canonical form; input may also carry spaces, dashes or dots, or omit the "+".
E164 = Annotated[
    str,
    AfterValidator(normalise_e164),
    Field(examples=["+918071387205"], json_schema_extra={"pattern": E164_PATTERN.pattern}),
]


def _check_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError("must be a UUID") from None


UUIDStr = Annotated[str, AfterValidator(_check_uuid), Field(examples=["caaa5b2a-5fd9-4974-a59e-1c9c01c4c6f5"])]


def parse_uuid(value: str) -> str | None:
    """The canonical form of `value`, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def _json_object_string(value: Any) -> Any:
    """Accept a JSON object sent as a string (dashboards often do) as well as the object itself."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError("must be an object (or a JSON object in a string)") from None
        return parsed
    return value


HeaderMap = Annotated[dict[str, str], BeforeValidator(_json_object_string), Field(max_length=50)]


class ErrorBody(ResponseModel):
    code: str = Field(examples=["AGENT_NOT_FOUND"])
    message: str


class ErrorEnvelope(ResponseModel):
    """Every error the API returns: `{"error": {"code", "message"}}`."""

    error: ErrorBody


class SuccessId(ResponseModel):
    success: bool = True
    id: str

