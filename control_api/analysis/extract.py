"""One post-call analysis against a language model: request, timeout, retries with backoff, typed result.

    result = await extract(llm, turns, fields, criteria, timeout=60, tries=3, backoff=1.0)

Raises `AnalysisFailed` (with the reason) when every try failed: provider errors, timeouts and malformed answers
all count as a failed try. A well-formed answer with some values of the wrong type is a success: those values are
dropped and listed in `dropped`.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from agent_runtime.providers.base import LanguageModel, TextDelta, ToolCallRequest
from control_api.analysis.fields import Dropped, FieldSpec, JsonValue, check
from control_api.analysis.request import (
    FUNCTION,
    SUCCESS_KEY,
    MalformedAnswer,
    Turn,
    answer_from_text,
    messages,
    tool,
)


class AnalysisFailed(Exception):
    """No try produced an answer; `str(exc)` is the last reason."""


@dataclass(frozen=True, slots=True)
class Extraction:
    call_data: list[dict[str, JsonValue]]  # [{key, value}] in the order of the fields
    prospect_data: dict[str, JsonValue]  # store_to_prospect_data: prospect_data key -> value
    prospect_columns: dict[str, str]  # store_to_prospect: prospect column -> value (as text)
    is_successful: bool | None
    dropped: list[str] = field(default_factory=list)  # keys whose answered value failed its check
    tries: int = 1


async def _ask(llm: LanguageModel, turns: Sequence[Turn], fields: Sequence[FieldSpec],
               criteria: str | None) -> dict[str, object]:
    text: list[str] = []
    async for chunk in llm.stream(messages(turns), tools=[tool(fields, criteria)], temperature=0.0):
        if isinstance(chunk, ToolCallRequest) and chunk.name == FUNCTION:
            return dict(chunk.arguments)
        if isinstance(chunk, TextDelta):
            text.append(chunk.text)
    return answer_from_text("".join(text))


def typed(answer: dict[str, object], fields: Sequence[FieldSpec], criteria: str | None, tries: int) -> Extraction:
    """The answer checked field by field (pure)."""
    call_data: list[dict[str, JsonValue]] = []
    prospect_data: dict[str, JsonValue] = {}
    columns: dict[str, str] = {}
    dropped: list[str] = []
    for spec in fields:
        raw = answer.get(spec.key)
        if raw is None:
            continue
        value = check(spec, raw)
        if isinstance(value, Dropped):
            dropped.append(spec.key)
            continue
        call_data.append({"key": spec.key, "value": value})
        if spec.store_to_prospect_data:
            prospect_data[spec.prospect_data_key or spec.key] = value
        if spec.store_to_prospect and spec.prospect_column:
            columns[spec.prospect_column] = _as_text(value)
    success = answer.get(SUCCESS_KEY) if criteria is not None else None
    return Extraction(call_data, prospect_data, columns, success if isinstance(success, bool) else None, dropped,
                      tries)


def _as_text(value: JsonValue) -> str:
    """A value as a text column holds it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Sleep = Callable[[float], Awaitable[None]]


async def extract(llm: LanguageModel, turns: Sequence[Turn], fields: Sequence[FieldSpec], criteria: str | None, *,
                  timeout: float, tries: int = 3, backoff: float = 1.0, sleep: Sleep = asyncio.sleep) -> Extraction:
    reason = "no try made"
    for attempt in range(1, tries + 1):
        try:
            answer = await asyncio.wait_for(_ask(llm, turns, fields, criteria), timeout)
            return typed(answer, fields, criteria, attempt)
        except TimeoutError:
            reason = f"no answer within {timeout:g} s"
        except MalformedAnswer as exc:
            reason = f"malformed answer: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ProviderError and anything a provider may raise
            reason = f"provider error: {exc}"[:500]
        if attempt < tries:
            await sleep(backoff * 2 ** (attempt - 1))
    raise AnalysisFailed(reason)
