"""JSON from the network, parsed so that no input can crash or stall its reader.

`json.loads` alone lets a few kilobytes do harm: `[` × 2000 raises `RecursionError` (not a `ValueError`), `1e400`
becomes `Infinity` (which no standard JSON reader accepts back), `NaN` parses, and invalid UTF-8 raises
`UnicodeDecodeError`. `parse()` turns each of these into one `UnsafeJson` error with a stable code, and bounds
size and nesting depth. The data channel and the HTTP API both read through it.
"""
from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32  # no message of the protocol or the API nests deeper than a handful of levels


class UnsafeJson(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJson("INVALID_NUMBER", f"number out of range: {text[:32]}")
    return value


def _no_constant(name: str) -> Any:
    raise UnsafeJson("INVALID_NUMBER", f"{name} is not a JSON number")


def _depth_within(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def parse(data: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `data`, or UnsafeJson with code TOO_LARGE, INVALID_JSON, INVALID_NUMBER or TOO_DEEP."""
    if max_bytes is not None and len(data) > max_bytes:
        raise UnsafeJson("TOO_LARGE", f"message larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except UnsafeJson:
        raise
    except RecursionError:
        raise UnsafeJson("TOO_DEEP", f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError:
        raise UnsafeJson("INVALID_JSON", "not valid UTF-8") from None
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python's digit limit
        raise UnsafeJson("INVALID_JSON", f"not valid JSON: {str(exc)[:120]}") from None
    if not _depth_within(value, max_depth):
        raise UnsafeJson("TOO_DEEP", f"JSON nested deeper than {max_depth} levels")
    return value
