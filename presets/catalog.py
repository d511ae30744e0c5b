"""The 27 built-in client-tool presets: id, UI title, default execution mode and their `client_fields`.

A preset is a client tool whose `client_fields.preset_id` names an entry here; the browser's
PresetRenderer draws its UI. Field types and defaults are the seed's copy-paste `POST /tools` bodies
(kept verbatim in `seed_bodies.json`, see `seed_bodies()`).

`fixed` fields keep the tool author's value even when the agent declares and fills a parameter of the
same name: the seed's upload and camera bodies declare a `reason` parameter that is a spoken-style
explanation, while `client_fields.reason` is the media routing key the upload is filed under.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

FieldType = Literal["string", "number", "boolean", "array", "object"]
ExecutionMode = Literal["blocking", "fire_and_forget"]

USER_TIMEOUT_S = 120.0  # presets that wait for the user (forms, pickers, uploads, clipping)
AUTOMATION_TIMEOUT_S = 30.0  # presets the page performs by itself (DOM actions, overlays)


@dataclass(frozen=True, slots=True)
class ClientField:
    name: str
    type: FieldType
    default: Any = None
    fixed: bool = False  # agent arguments never override it (see module docstring)


@dataclass(frozen=True, slots=True)
class Preset:
    preset_id: str
    title: str
    execution_mode: ExecutionMode
    fields: tuple[ClientField, ...] = ()
    result_timeout_s: float = AUTOMATION_TIMEOUT_S

    def field(self, name: str) -> ClientField | None:
        return next((f for f in self.fields if f.name == name), None)


def _f(name: str, type_: FieldType, default: Any = None, *, fixed: bool = False) -> ClientField:
    return ClientField(name, type_, default, fixed)


_ROUTE = _f("route", "string")
_COLOR = _f("color", "string", "#f97316")

_PRESETS: tuple[Preset, ...] = (
    Preset("vanira_form", "Data Collection Form", "blocking", (
        _f("title", "string", "Enter your details"),
        _f("fields", "string", "Name, Email, Phone"),  # comma-separated labels
        _f("description", "string"),
        _f("submit_label", "string", "Submit"),
    ), USER_TIMEOUT_S),
    Preset("vanira_calendar", "Date & Time Picker", "blocking", (
        _f("title", "string", "Select a Date & Time"),
        _f("timezone", "string"),
        _f("slots_api_url", "string"),  # may hold {{date}} / {{timezone}}, filled in the browser
        _f("slots_api_method", "string", "GET"),
        _f("slots_api_headers", "string", "{}"),  # JSON text, as in the seed
        _f("slots_api_body", "string", "{}"),
    ), USER_TIMEOUT_S),
    Preset("vanira_upload", "File Upload", "blocking", (
        _f("title", "string", "Upload a File"),
        _f("description", "string", "Drop or select any file — images, PDFs, documents — up to 3 MB"),
        _f("reason", "string", "upload", fixed=True),
        _f("accept", "string", "application/pdf,image/*"),
    ), USER_TIMEOUT_S),
    Preset("vanira_camera", "Camera Capture", "fire_and_forget", (
        _f("title", "string", "Take a Photo"),
        _f("description", "string", "Point your camera at the subject, then tap capture to send it to your agent."),
        _f("reason", "string", "camera_capture", fixed=True),
        _f("facing_mode", "string", "environment"),
        _f("liveness_check", "boolean", False),
    ), USER_TIMEOUT_S),
    Preset("vanira_navigate", "Navigate to Route", "blocking", (
        _f("target_url", "string"),
    )),
    Preset("vanira_highlight_element", "Highlight Element", "blocking", (
        _f("css_selector", "string"),
        _f("color", "string", "#10B981"),
        _f("duration_ms", "number", 4000),
    )),
    Preset("vanira_click_element", "Click Element", "blocking", (
        _f("element_id", "string"),  # HTML id, no '#'
        _f("css_selector", "string"),
        _ROUTE,
    )),
    Preset("vanira_select_option", "Select Dropdown Option", "blocking", (
        _f("element_id", "string"),
        _ROUTE,
        _f("allowed_options", "array"),
        _f("option_value", "string"),
        _f("option_label", "string"),
    )),
    Preset("vanira_set_date", "Set Date Field", "blocking", (
        _f("element_id", "string"),
        _ROUTE,
        _f("input_kind", "string", "text"),  # text | date
        _f("text_format", "string", "YYYY-MM-DD"),
        _f("date", "string"),
    )),
    Preset("vanira_type_text", "DOM Typing Simulation", "blocking", (
        _f("css_selector", "string"),
        _f("element_id", "string"),
        _ROUTE,
        _f("typing_mode", "string", "append"),  # append | replace
        _f("delay_ms", "number", 50),
        _f("text_to_type", "string"),
    )),
    Preset("vanira_erase_text", "Whiteboard / DOM Erase", "blocking", (
        _f("element_id", "string"),
        _f("css_selector", "string"),
        _ROUTE,
        _f("delay_ms", "number", 50),
        _f("mode", "string", "all"),
        _f("num_words", "number"),
    )),
    Preset("vanira_erase_draw", "Erase Drawing Board", "blocking"),
    Preset("vanira_draw", "Chalkboard Shape Drawing", "blocking", (
        _f("shape_duration_ms", "number", 2000),
        _f("shape_gap_ms", "number", 80),
    )),
    Preset("vanira_live_vision", "Live Vision (Streaming Camera)", "fire_and_forget", (
        _f("target_fps", "number", 1),
        _f("max_width", "number", 640),
        _f("facing_mode", "string", "environment"),
        _f("reason", "string", "camera_capture"),
        _f("show_preview", "boolean", True),
        _f("scope", "string", "until_call_end"),
        _f("duration_sec", "number"),
    )),
    Preset("vanira_close_live_camera", "Stop Live Camera", "blocking"),
    Preset("vanira_live_screen", "Live Screen Share", "fire_and_forget", (
        _f("target_fps", "number", 1),
        _f("max_width", "number", 1280),
        _f("reason", "string", "screen_capture"),
        _f("prefer_current_tab", "boolean", True),
        _f("show_preview", "boolean", True),
        _f("scope", "string", "until_call_end"),
        _f("duration_sec", "number"),
    )),
    Preset("vanira_close_live_screen", "Stop Live Screen Share", "blocking"),
    Preset("vanira_clip_region", "Page Region Clip", "blocking", (
        _f("hint", "string", "Drag to select an area — release to clip."),
        _f("reason", "string", "page_clip"),
        _f("min_region_px", "number", 24),
        _f("prompt", "string"),
    ), USER_TIMEOUT_S),
    Preset("vanira_tab_screenshot", "Tab Screenshot", "blocking", (
        _f("reason", "string", "tab_screenshot"),
        _f("max_width", "number", 1280),
        _f("max_elements", "number", 80),
        _f("prompt", "string"),
    )),
    Preset("vanira_screen_ink", "Screen Ink", "blocking", (
        _COLOR,
        _f("strokes", "array"),
        _f("points", "array"),
        _f("path_d", "string"),
        _f("css_selector", "string"),
        _f("close", "boolean"),
        _f("animate", "boolean", True),
        _f("interactive", "boolean", False),
        _f("clear_before", "boolean", False),
    )),
    Preset("vanira_screen_cursor", "Screen Cursor", "blocking", (
        _COLOR,
        _f("duration_ms", "number", 2500),
        _f("x", "number"),
        _f("y", "number"),
        _f("css_selector", "string"),
        _f("label", "string"),
    )),
    Preset("vanira_screen_click", "Screen Click", "blocking", (
        _f("perform_click", "boolean", True),
        _f("show_ripple", "boolean", True),
        _COLOR,
        _f("x", "number"),
        _f("y", "number"),
        _f("css_selector", "string"),
    )),
    Preset("vanira_clear_screen_overlay", "Clear Screen Overlay", "blocking"),
    Preset("vanira_page_scan", "Page Scan", "blocking", (
        _f("max_elements", "number", 64),
        _f("include_image", "boolean", False),
        _f("prompt", "string"),
    )),
    Preset("vanira_point_at", "Point At", "blocking", (
        _f("fly", "boolean", True),
        _f("outline", "boolean", True),
        _COLOR,
        _f("element_id", "string"),
        _f("label", "string"),
    )),
    Preset("vanira_outline_targets", "Outline Targets", "blocking", (
        _COLOR,
        _f("animate", "boolean", True),
        _f("targets", "string"),  # JSON array of page_scan ids; an array is accepted too
    )),
    Preset("vanira_clear_guide", "Clear Guide", "blocking"),
)

PRESETS: dict[str, Preset] = {p.preset_id: p for p in _PRESETS}

# Field types a value may also take, beyond its declared type (the seed's outline_targets passes a
# JSON-text array; agents often send the array itself).
_ALSO_ACCEPTED: dict[tuple[str, str], tuple[FieldType, ...]] = {
    ("vanira_outline_targets", "targets"): ("array",),
}


def get_preset(preset_id: str) -> Preset | None:
    return PRESETS.get(preset_id)


def accepted_types(preset_id: str, field_name: str) -> tuple[FieldType, ...]:
    preset = PRESETS[preset_id]
    declared = preset.field(field_name)
    if declared is None:
        return ()
    return (declared.type, *_ALSO_ACCEPTED.get((preset_id, field_name), ()))


@cache
def _load_seed_bodies() -> str:
    return resources.files(__package__).joinpath("seed_bodies.json").read_text(encoding="utf-8")


def seed_bodies() -> dict[str, dict[str, Any]]:
    """The seed's copy-paste `POST /tools` bodies, keyed by preset_id (and end_call, human_transfer,
    agent_transfer for the built-ins). A fresh copy each call: callers may mutate it."""
    return json.loads(_load_seed_bodies())


def catalog_json() -> list[dict[str, Any]]:
    """The catalog as plain data (for an API listing or the dashboard's preset tiles)."""
    return [
        {
            "preset_id": p.preset_id,
            "title": p.title,
            "execution_mode": p.execution_mode,
            "result_timeout_s": p.result_timeout_s,
            "client_fields": [
                {"name": f.name, "type": f.type, "default": f.default} for f in p.fields
            ],
        }
        for p in _PRESETS
    ]
