"""The one model request of a post-call analysis: the prompt, the function the model must call, and reading
its answer (a tool call, or — for models without tools — a JSON object in the text). Pure."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from control_api.analysis.fields import FieldSpec, JsonSchema, schema_of

FUNCTION = "record_call_analysis"
SUCCESS_KEY = "is_call_successful"

INSTRUCTIONS = (
    "You analyse a finished phone call between an AI agent and a person. Read the transcript and call the "
    f"function {FUNCTION} exactly once. Fill each field only with what the transcript says; use null when it does "
    "not say. Do not invent values."
)


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "user" (the person) or "agent"
    text: str


def success_criteria(metric: object) -> str | None:
    """The agent's success criteria as text; None when it has none (no metric, empty, or `enabled: false`)."""
    if not isinstance(metric, dict) or not metric or metric.get("enabled") is False:
        return None
    for name in ("criteria", "prompt", "description", "success_criteria"):
        value = metric.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return json.dumps(metric, ensure_ascii=False, sort_keys=True)


def tool(fields: Sequence[FieldSpec], criteria: str | None) -> dict[str, object]:
    """The OpenAI function definition whose arguments are the analysis."""
    properties: dict[str, JsonSchema] = {spec.key: schema_of(spec) for spec in fields}
    if criteria is not None:
        properties[SUCCESS_KEY] = {
            "type": ["boolean", "null"],
            "description": f"Whether the call was successful by these criteria: {criteria}",
        }
    return {"type": "function", "function": {
        "name": FUNCTION,
        "description": "Record what the call established.",
        "parameters": {"type": "object", "properties": properties, "required": list(properties)},
    }}


def messages(turns: Sequence[Turn]) -> list[dict[str, object]]:
    lines = [f"{'Person' if turn.role == 'user' else 'Agent'}: {turn.text}" for turn in turns]
    return [{"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": "Transcript:\n" + "\n".join(lines)}]


class MalformedAnswer(ValueError):
    """The model answered with neither the function call nor a JSON object."""


def answer_from_text(text: str) -> dict[str, object]:
    """The JSON object in a text answer (inside a code fence or not)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise MalformedAnswer("the answer holds no JSON object")
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"the answer is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise MalformedAnswer("the answer is not a JSON object")
    return value
