"""The agents a new server starts with: a demo agent, and a preset demo agent that drives the caller's screen.

Seeded at start-up for the default client when it has no agent yet (the demo page lists them; the first is
preselected), on the server's default providers.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_runtime.providers.base import ProviderRegistry
from control_api.storage import Database
from control_api.storage.agents import seed_first_agents
from presets.catalog import seed_bodies
from presets.validation import validate_tool

DEMO_AGENT = {
    "name": "Demo Agent",
    "welcome_message": "Hi! I'm the Talkwire demo agent. What would you like to talk about?",
    "agent_prompt": (
        "You are a friendly voice assistant in a live phone-style conversation. Answer in one or two short "
        "sentences of plain spoken English, with no lists, markup or emojis."
    ),
    "silence_alert_message": "Are you still there?",
    "duty": "support",
}


# The demo page's second agent: it drives the caller's screen with presets (PresetRenderer renders them).
PRESET_DEMO_AGENT = {
    "name": "Preset Demo Agent",
    "welcome_message": "Hi! I can show you forms, a calendar, an upload box and more on this page. What do you need?",
    "agent_prompt": (
        "You are a helpful voice assistant on a web page. You can act on the user's screen with tools: show a "
        "form to collect their details, a calendar to book an appointment, an upload box for a file, take them "
        "to the pricing page, highlight or point at things. Use a tool when it helps, then say in one short "
        "sentence what you did. Speak plain English, one or two short sentences, no lists or markup."
    ),
    "silence_alert_message": "Are you still there?",
    "duty": "support",
}
PRESET_DEMO_TOOLS = ("vanira_form", "vanira_calendar", "vanira_upload", "vanira_navigate",
                     "vanira_highlight_element", "vanira_page_scan", "vanira_point_at")


def provider_choices(providers: ProviderRegistry) -> dict[str, dict[str, str]]:
    """The registry's default providers as an agent's seed fields (model / voice / transcription)."""
    choices: dict[str, dict[str, str]] = {}
    for kind, field_name, name_key in (("llm", "model", "model"), ("tts", "voice", "name"),
                                       ("stt", "transcription", "model")):
        if kind in providers.defaults:
            provider, name = providers.defaults[kind]
            choices[field_name] = {"provider": provider, name_key: name}
    return choices


async def seed_demo_agents(db: Database, client_id: str,
                           choices: Mapping[str, Mapping[str, str]] | None = None) -> str | None:
    """Create the demo agent, and the preset demo agent with its preset tools attached, for a client that has
    no agent yet; returns the demo agent's id when created. `choices` are the providers they use (the
    server's defaults at first start, so `--providers fake` seeds agents that run no models)."""
    choices = choices or {}
    return await seed_first_agents(db, client_id, {**DEMO_AGENT, **choices}, {**PRESET_DEMO_AGENT, **choices},
                                   preset_demo_tools())


def preset_demo_tools() -> list[dict[str, Any]]:
    """The preset demo agent's tools, as stored tool columns."""
    bodies = seed_bodies()
    tools = []
    for preset_id in PRESET_DEMO_TOOLS:
        body = bodies[preset_id]
        # A display name of its own (the LLM calls the seed's ref_code), so the seed's copy-paste bodies
        # a user creates next to it are easy to tell apart.
        body["name"] = f"Demo: {body['name']}"
        if preset_id == "vanira_calendar":  # the seed's slots API is a placeholder: pick a time instead
            body["client_fields"] = {k: v for k, v in body["client_fields"].items()
                                     if not k.startswith("slots_api")}
        tools.append(validate_tool(body))
    return tools
