"""Post-call analysis, pure parts: type checks, the request's schema, reading answers, input_needed_json_format."""
from __future__ import annotations

import pytest

from control_api.analysis.extract import typed
from control_api.analysis.fields import DROPPED, FieldSpec, check, fields_from_input_format, schema_of
from control_api.analysis.request import (
    SUCCESS_KEY,
    MalformedAnswer,
    answer_from_text,
    success_criteria,
    tool,
)

NUMBER = FieldSpec("budget", "Budget in dollars", "number")
FLAG = FieldSpec("wants_demo", "Wants a demo?", "boolean")
CHOICE = FieldSpec("interest", "Interest", "enum", ("Interested", "Not Interested"))
WHEN = FieldSpec("callback", "Callback date", "date")
TEXT = FieldSpec("email", "Email", "string", store_to_prospect=True, prospect_column="email_id",
                 store_to_prospect_data=True, prospect_data_key="contact_email")


@pytest.mark.parametrize(("spec", "value", "kept"), [
    (NUMBER, 1200, 1200), (NUMBER, 12.5, 12.5), (NUMBER, 3.0, 3), (NUMBER, "1200", DROPPED), (NUMBER, True, DROPPED),
    (NUMBER, float("nan"), DROPPED),
    (FLAG, True, True), (FLAG, "yes", DROPPED), (FLAG, 1, DROPPED),
    (CHOICE, "interested", "Interested"), (CHOICE, "Maybe", DROPPED), (CHOICE, 3, DROPPED),
    (WHEN, "2026-05-01", "2026-05-01"), (WHEN, "next Tuesday", DROPPED),
    (TEXT, "  a@b.example ", "a@b.example"), (TEXT, "", DROPPED), (TEXT, 42, DROPPED), (TEXT, ["x"], DROPPED),
])
def test_each_type_keeps_only_values_of_that_type(spec: FieldSpec, value: object, kept: object) -> None:
    assert check(spec, value) == kept if kept is not DROPPED else check(spec, value) is DROPPED


def test_schema_offers_null_and_the_enum_values() -> None:
    assert schema_of(CHOICE)["enum"] == ["Interested", "Not Interested", None]
    assert schema_of(NUMBER)["type"] == ["number", "null"]
    assert schema_of(WHEN)["format"] == "date"
    definition = tool([NUMBER, CHOICE], "The person booked a demo")
    properties = definition["function"]["parameters"]["properties"]  # type: ignore[index]
    assert set(properties) == {"budget", "interest", SUCCESS_KEY}
    assert "booked a demo" in properties[SUCCESS_KEY]["description"]
    assert SUCCESS_KEY not in tool([NUMBER], None)["function"]["parameters"]["properties"]  # type: ignore[index]


def test_typed_answer_lands_in_call_data_prospect_data_and_columns() -> None:
    answer = {"budget": 1200, "wants_demo": "sure", "interest": "Interested", "email": "a@b.example",
              SUCCESS_KEY: True, "unasked": 1}
    result = typed(answer, [NUMBER, FLAG, CHOICE, TEXT], "booked", 2)
    assert result.call_data == [{"key": "budget", "value": 1200}, {"key": "interest", "value": "Interested"},
                                {"key": "email", "value": "a@b.example"}]
    assert result.prospect_data == {"contact_email": "a@b.example"}
    assert result.prospect_columns == {"email_id": "a@b.example"}
    assert (result.is_successful, result.dropped, result.tries) == (True, ["wants_demo"], 2)
    assert typed({SUCCESS_KEY: "yes"}, [], "booked", 1).is_successful is None
    assert typed({SUCCESS_KEY: True}, [], None, 1).is_successful is None  # no metric: never scored


def test_text_answers_and_malformed_ones() -> None:
    assert answer_from_text('```json\n{"budget": 5}\n```') == {"budget": 5}
    for bad in ("no json here", "{not json}", "[1, 2]"):
        with pytest.raises(MalformedAnswer):
            answer_from_text(bad)


def test_success_criteria_from_the_metric() -> None:
    assert success_criteria(None) is None and success_criteria({}) is None
    assert success_criteria({"criteria": "Booked a meeting"}) == "Booked a meeting"
    assert success_criteria({"enabled": False, "criteria": "x"}) is None
    assert success_criteria({"goal": "sale"}) == '{"goal": "sale"}'


def test_input_needed_json_format_names_more_fields() -> None:
    specs = fields_from_input_format(
        ["budget", {"key": "size", "type": "number", "description": "Team size"}, {"name": "tier", "type": "enum",
         "enum": ["A", "B"]}, {"key": "odd", "type": "enum"}, 7, {"type": "string"}], taken=["budget"])
    assert [(s.key, s.data_type) for s in specs] == [("size", "number"), ("tier", "enum"), ("odd", "string")]
    assert specs[0].prompt == "Team size" and specs[1].enum_values == ("A", "B")
    assert not any(s.store_to_prospect or s.store_to_prospect_data for s in specs)
