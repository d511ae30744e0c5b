"""{{param}} resolution: JSON types kept for whole placeholders, text inside strings, nesting,
unknown placeholders untouched, auto-mapping, and the LLM function definitions."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agent_runtime.tools.definitions import llm_definition
from presets.catalog import seed_bodies
from presets.templating import as_text, client_arguments, resolve, server_request
from presets.validation import validate_tool

ARGS = {"n": 3, "flag": False, "items": ["a", "b"], "obj": {"k": 1.5}, "name": "Teja", "none": None}
DECLARED = set(ARGS) | {"missing"}


def test_whole_placeholder_keeps_json_type():
    assert resolve("{{n}}", ARGS, DECLARED) == 3
    assert resolve("{{ flag }}", ARGS, DECLARED) is False
    assert resolve("{{items}}", ARGS, DECLARED) == ["a", "b"]
    assert resolve("{{obj}}", ARGS, DECLARED) == {"k": 1.5}
    assert resolve("{{missing}}", ARGS, DECLARED) is None


def test_inline_placeholders_are_text():
    assert resolve("x{{n}}-{{flag}}", ARGS, DECLARED) == "x3-false"
    assert resolve("hi {{name}}: {{items}} {{obj}}", ARGS, DECLARED) == 'hi Teja: ["a","b"] {"k":1.5}'
    assert resolve("[{{missing}}]", ARGS, DECLARED) == "[]"


def test_nested_static_and_unknown():
    value = {"a": ["{{n}}", {"b": "{{name}}", "c": 7}], "{{n}}": "static", "d": "{{date}}", "e": True}
    assert resolve(value, ARGS, DECLARED) == {
        "a": [3, {"b": "Teja", "c": 7}], "{{n}}": "static", "d": "{{date}}", "e": True,
    }


def test_custom_client_tool_arguments():
    mapped = {"parameters": [{"name": "customer_name"}], "client_fields": {"name": "{{customer_name}}",
                                                                         "source": "website"}}
    assert client_arguments(mapped, {"customer_name": "Teja", "extra": 1}) == {"name": "Teja", "source": "website"}
    auto = {"parameters": [{"name": "location"}, {"name": "zoom"}], "client_fields": None}
    assert client_arguments(auto, {"location": "Paris", "zoom": 12, "junk": 1}) == {"location": "Paris", "zoom": 12}
    assert client_arguments({**auto, "client_fields": {}}, {"location": "Oslo"}) == {"location": "Oslo"}


def test_preset_arguments_merge_agent_values():
    calendar = validate_tool(seed_bodies()["vanira_calendar"])
    args = client_arguments(calendar, {"reason": "To schedule your consultation"})
    assert args["preset_id"] == "vanira_calendar"
    assert args["slots_api_url"] == "https://api.example.com/slots?date={{date}}&tz={{timezone}}"  # browser fills
    assert args["agent_arguments"] == {"reason": "To schedule your consultation"}

    ink = validate_tool(seed_bodies()["vanira_screen_ink"])
    assert client_arguments(ink, {"color": "#000000", "points": [[0.1, 0.2]]})["color"] == "#000000"
    assert client_arguments(ink, {})["color"] == "#f97316"

    upload = validate_tool(seed_bodies()["vanira_upload"])
    args = client_arguments(upload, {"reason": "To verify your identity"})
    assert args["reason"] == "upload"  # the routing key is fixed; the agent's text is in agent_arguments
    assert args["agent_arguments"]["reason"] == "To verify your identity"

    typed = validate_tool(seed_bodies()["vanira_type_text"])
    assert client_arguments(typed, {"text_to_type": "F=ma"})["text_to_type"] == "F=ma"


def test_server_request_templating():
    tool = validate_tool({
        "name": "t", "description": "d", "type": "server",
        "parameters": [{"name": "order_id"}, {"name": "qty", "type": "integer"}, {"name": "rush", "type": "boolean"}],
        "server": {"url": "https://h.example/orders/{{order_id}}", "method": "put"},
        "request": {"body": {"order": {"id": "{{order_id}}", "qty": "{{qty}}"}, "src": "talkwire"},
                    "headers": {"X-Rush": "{{rush}}", "X-Static": "1"}, "query": {"q": "{{qty}}", "v": "2"}},
    })
    spec = server_request(tool, {"order_id": "A/1 2", "qty": 4, "rush": True})
    assert spec["url"] == "https://h.example/orders/A%2F1%202"
    assert spec["method"] == "PUT"
    assert spec["body"] == {"order": {"id": "A/1 2", "qty": 4}, "src": "talkwire"}
    assert spec["headers"] == {"X-Rush": "true", "X-Static": "1"}
    assert spec["query"] == {"q": "4", "v": "2"}

    auto = validate_tool({"name": "t", "description": "d", "type": "server", "parameters": [{"name": "a"}],
                          "server": {"url": "https://h.example/x"}})
    assert server_request(auto, {"a": 1, "b": 2})["body"] == {"a": 1}
    auto["server"]["method"] = "GET"
    spec = server_request(auto, {"a": 1})
    assert spec["body"] is None and spec["query"] == {"a": "1"}


def test_llm_definitions():
    draw = validate_tool(seed_bodies()["vanira_draw"])
    fn = llm_definition(draw)
    assert fn["type"] == "function"
    assert fn["function"]["name"] == "draw_on_board"
    props = fn["function"]["parameters"]["properties"]
    assert props["shape_type"] == {"type": "string", "description": "line | circle | triangle | rectangle | label",
                                   "enum": ["line", "circle", "triangle", "rectangle", "label"]}
    assert props["radius"]["type"] == "number"
    assert "required" not in fn["function"]["parameters"]

    form = llm_definition(validate_tool(seed_bodies()["vanira_form"]))["function"]
    assert form["parameters"]["required"] == ["reason"]
    assert form["description"].startswith("Call this tool to display a form")
    nav = llm_definition(validate_tool(seed_bodies()["vanira_navigate"]))["function"]
    assert nav["parameters"] == {"type": "object", "properties": {}}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@hypothesis_settings(max_examples=60, deadline=None)
@given(value=_json, arg=_json)
def test_resolution_properties(value, arg):
    # Static values (no placeholders) come back unchanged; a whole placeholder yields the argument itself.
    if "{{" not in json.dumps(value):
        assert resolve(value, {"p": arg}, {"p"}) == value
    assert resolve({"k": ["{{p}}"]}, {"p": arg}, {"p"}) == {"k": [arg]}
    assert resolve("<{{p}}>", {"p": arg}, {"p"}) == f"<{as_text(arg)}>"
