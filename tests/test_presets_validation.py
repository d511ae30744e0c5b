"""Catalog and POST /tools validation: every seed body as-is, defaults, and field-named errors."""
from __future__ import annotations

import copy

import pytest

from presets.catalog import PRESETS, catalog_json, get_preset, seed_bodies
from presets.validation import ToolValidationError, ref_code_from_name, validate_tool, validate_tool_patch

SEED_TABLE = {  # preset_id → default mode, straight from the seed's table
    "vanira_form": "blocking", "vanira_calendar": "blocking", "vanira_upload": "blocking",
    "vanira_camera": "fire_and_forget", "vanira_navigate": "blocking", "vanira_highlight_element": "blocking",
    "vanira_click_element": "blocking", "vanira_select_option": "blocking", "vanira_set_date": "blocking",
    "vanira_type_text": "blocking", "vanira_erase_text": "blocking", "vanira_erase_draw": "blocking",
    "vanira_draw": "blocking", "vanira_live_vision": "fire_and_forget", "vanira_close_live_camera": "blocking",
    "vanira_live_screen": "fire_and_forget", "vanira_close_live_screen": "blocking",
    "vanira_clip_region": "blocking", "vanira_tab_screenshot": "blocking", "vanira_screen_ink": "blocking",
    "vanira_screen_cursor": "blocking", "vanira_screen_click": "blocking",
    "vanira_clear_screen_overlay": "blocking", "vanira_page_scan": "blocking", "vanira_point_at": "blocking",
    "vanira_outline_targets": "blocking", "vanira_clear_guide": "blocking",
}

SERVER_TOOL = {
    "name": "check_order_status",
    "description": "Check the status of a customer order by order ID",
    "type": "server",
    "parameters": [{"name": "order_id", "type": "string", "description": "Order ID", "required": True}],
    "server": {"url": "https://api.acme.com/orders", "method": "POST"},
    "request": {"body": {"order_id": "{{order_id}}", "source": "vanira"},
                "headers": {"X-API-Key": "sk-abc"}, "query": {}},
}


def test_catalog_matches_the_seed_table():
    assert {p: PRESETS[p].execution_mode for p in PRESETS} == SEED_TABLE
    assert len(catalog_json()) == 27


@pytest.mark.parametrize("preset_id", sorted(SEED_TABLE))
def test_seed_body_validates_as_is(preset_id):
    body = seed_bodies()[preset_id]
    tool = validate_tool(copy.deepcopy(body))
    assert tool["client_fields"] == body["client_fields"]
    assert tool["execution_mode"] == body["execution_mode"] == SEED_TABLE[preset_id]
    assert tool["ref_code"] == body["ref_code"]
    assert tool["channels"] == body["channels"]
    assert [p["name"] for p in tool["parameters"]] == [p["name"] for p in body["parameters"]]
    preset = get_preset(preset_id)
    for key, value in body["client_fields"].items():  # every seed key is a catalog field of that type
        if key != "preset_id":
            assert preset.field(key) is not None, key


@pytest.mark.parametrize("name", ["end_call", "human_transfer", "agent_transfer"])
def test_builtin_seed_bodies_validate(name):
    tool = validate_tool(seed_bodies()[name])
    assert tool["ref_code"] == name


def test_defaults_by_type_and_preset():
    server = validate_tool({k: v for k, v in SERVER_TOOL.items()})
    assert server["execution_mode"] == "blocking"
    assert server["channels"] == ["voice_web", "voice_telephony"]
    assert server["ref_code"] == "check_order_status"
    assert server["server"] == {"url": "https://api.acme.com/orders", "method": "POST"}
    assert "client_fields" not in server

    client = validate_tool({"name": "Say Hi", "description": "greet", "type": "client"})
    assert client["execution_mode"] == "fire_and_forget"
    assert client["ref_code"] == "say_hi"
    assert client["client_fields"] is None

    form = copy.deepcopy(seed_bodies()["vanira_form"])
    del form["execution_mode"]
    assert validate_tool(form)["execution_mode"] == "blocking"  # the preset's own mode, not the client default


def test_ref_code_slug():
    assert ref_code_from_name("Check Order-Status!") == "check_order_status"
    assert ref_code_from_name("showLocationMap") == "show_location_map"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("server"), "server.url"),
        (lambda b: b["server"].update(url="ftp://x.example/a"), "server.url"),
        (lambda b: b["server"].update(url="https://{{order_id}}.example/a"), "server.url"),
        (lambda b: b["server"].update(method="TRACE"), "server.method"),
        (lambda b: b.update(type="webhook"), "type"),
        (lambda b: b.pop("name"), "name"),
        (lambda b: b.update(description=""), "description"),
        (lambda b: b.update(execution_mode="sometimes"), "execution_mode"),
        (lambda b: b.update(channels=["voice_web", "fax"]), "channels[1]"),
        (lambda b: b.update(ref_code="has space"), "ref_code"),
        (lambda b: b["parameters"][0].update(type="date"), "parameters[0].type"),
        (lambda b: b["parameters"][0].update(type="enum"), "parameters[0].enum"),
        (lambda b: b["parameters"].append({"name": "order_id"}), "parameters[1].name"),
        (lambda b: b["parameters"][0].update(required="yes"), "parameters[0].required"),
        (lambda b: b["request"]["body"].update(items=[{"sku": "{{sku}}"}]), "request.body.items[0].sku"),
        (lambda b: b["request"]["headers"].update(Authorization="Bearer {{token}}"),
         "request.headers.Authorization"),
        (lambda b: b["request"]["query"].update(q="{{query}}"), "request.query.q"),
        (lambda b: b["server"].update(url="https://api.acme.com/orders/{{id}}"), "server.url"),
        (lambda b: b["request"].update(cookies={}), "request.cookies"),
        (lambda b: b.update(timeout_seconds=0), "timeout_seconds"),
    ],
)
def test_bad_server_bodies_name_the_field(change, field):
    body = copy.deepcopy(SERVER_TOOL)
    change(body)
    with pytest.raises(ToolValidationError) as err:
        validate_tool(body)
    assert err.value.field == field


def test_templated_url_and_declared_placeholders_are_fine():
    body = copy.deepcopy(SERVER_TOOL)
    body["server"]["url"] = "https://api.acme.com/orders/{{order_id}}"
    body["request"]["headers"]["X-Order"] = "{{ order_id }}"
    assert validate_tool(body)["server"]["url"].endswith("/{{order_id}}")


@pytest.mark.parametrize(
    ("preset_id", "key", "value"),
    [
        ("vanira_type_text", "delay_ms", "50"),
        ("vanira_camera", "liveness_check", "no"),
        ("vanira_select_option", "allowed_options", "economy"),
        ("vanira_form", "title", 5),
        ("vanira_screen_click", "perform_click", 1),
    ],
)
def test_wrong_client_field_type(preset_id, key, value):
    body = copy.deepcopy(seed_bodies()[preset_id])
    body["client_fields"][key] = value
    with pytest.raises(ToolValidationError) as err:
        validate_tool(body)
    assert err.value.field == f"client_fields.{key}"


def test_unknown_preset_and_passthrough():
    body = copy.deepcopy(seed_bodies()["vanira_form"])
    body["client_fields"]["preset_id"] = "vanira_teleport"
    with pytest.raises(ToolValidationError) as err:
        validate_tool(body)
    assert err.value.field == "client_fields.preset_id"

    custom = {"name": "greet_user", "description": "d", "type": "client",
              "client_fields": {"name": "{{customer_name}}", "when": "{{not_a_param}}"}}
    assert validate_tool(custom)["client_fields"]["when"] == "{{not_a_param}}"  # unknown placeholders pass

    typed_later = copy.deepcopy(seed_bodies()["vanira_type_text"])
    typed_later["parameters"].append({"name": "speed", "type": "number"})
    typed_later["client_fields"]["delay_ms"] = "{{speed}}"  # a whole placeholder is typed at call time
    assert validate_tool(typed_later)["client_fields"]["delay_ms"] == "{{speed}}"


def test_patch_replaces_fields_and_keeps_the_rest():
    stored = validate_tool(copy.deepcopy(SERVER_TOOL))
    patched = validate_tool_patch(stored, {"name": "Order status", "request": {"body": {"id": "{{order_id}}"}}})
    assert patched["name"] == "Order status"
    assert patched["ref_code"] == "check_order_status"  # the code the agent calls does not move
    assert patched["request"] == {"body": {"id": "{{order_id}}"}, "headers": {}, "query": {}}
    assert patched["parameters"] == stored["parameters"]
    with pytest.raises(ToolValidationError) as err:
        validate_tool_patch(stored, {"parameters": [{"name": "other"}]})  # body still uses {{order_id}}
    assert err.value.field == "request.body.order_id"
    as_client = validate_tool_patch(stored, {"type": "client"})
    assert "server" not in as_client and as_client["execution_mode"] == "fire_and_forget"
