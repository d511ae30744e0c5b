"""An agent's per-stage fallbacks (`model.fallback`, `voice.fallback`, `transcription.fallback`) through the API:
checked against the provider catalog like the primary choice, and returned by the agent endpoints when set."""
from __future__ import annotations

from typing import Any

import pytest
from test_api_fixtures import (  # noqa: F401  (fixtures)
    LOCAL_MODEL,
    LOCAL_TRANSCRIPTION,
    LOCAL_VOICE,
    Api,
    api,
    settings,
)

FALLBACKS = {
    "model": {**LOCAL_MODEL, "fallback": {"provider": "FAKE", "model": "echo"}},
    "voice": {**LOCAL_VOICE, "fallback": {"provider": "ESPEAK", "name": "en-us"}},
    "transcription": {**LOCAL_TRANSCRIPTION, "fallback": {"provider": "FAKE", "model": "scripted"}},
}
NOT_OFFERED = {  # field -> (a fallback this server does not offer, the discovery endpoint that lists what it does)
    "model": ({"provider": "AZURE", "model": "gpt-4.1-mini"}, "/discovery/models"),
    "voice": ({"provider": "ELEVENLABS", "name": "Riya Rao"}, "/discovery/voices"),
    "transcription": ({"provider": "DEEPGRAM", "model": "nova-2"}, "/discovery/transcription-models"),
}
PRIMARY = {"model": LOCAL_MODEL, "voice": LOCAL_VOICE, "transcription": LOCAL_TRANSCRIPTION}


async def test_fallbacks_are_returned_when_set(api: Api) -> None:  # noqa: F811  (the fixture)
    agent_id = await api.agent(**FALLBACKS)
    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert {field: detail[field] for field in FALLBACKS} == FALLBACKS
    [listed] = [a for a in (await api.ok("GET", "/assistant"))["agents"] if a["id"] == agent_id]
    assert {field: listed[field] for field in FALLBACKS} == FALLBACKS

    # a choice without one has no `fallback` key (the responses of agents without fallbacks are as before)
    await api.ok("PATCH", f"/assistant/{agent_id}", json={"voice": LOCAL_VOICE})
    detail = await api.ok("GET", f"/assistant/{agent_id}")
    assert detail["voice"] == LOCAL_VOICE and detail["model"] == FALLBACKS["model"]
    await api.ok("PATCH", f"/assistant/{agent_id}", json={"model": {**LOCAL_MODEL, "fallback": None}})
    assert (await api.ok("GET", f"/assistant/{agent_id}"))["model"] == LOCAL_MODEL
    plain = await api.ok("GET", f"/assistant/{await api.agent()}")
    assert all("fallback" not in plain[field] for field in FALLBACKS)


@pytest.mark.parametrize("field", list(NOT_OFFERED))
async def test_a_fallback_must_be_offered_here_like_the_primary(api: Api, field: str) -> None:  # noqa: F811
    fallback, endpoint = NOT_OFFERED[field]
    choice: dict[str, Any] = {**PRIMARY[field], "fallback": fallback}
    message = await api.error("POST", "/assistant", 422, "VALIDATION_ERROR",
                              json={"name": "Bot", "welcome_message": "Hi!", "agent_prompt": "Be brief.",
                                    field: choice})
    named = "/".join(fallback.values())
    assert message.startswith(f"{field}.fallback:") and named in message and f"GET {endpoint}" in message, message

    agent_id = await api.agent()
    message = await api.error("PATCH", f"/assistant/{agent_id}", 422, "VALIDATION_ERROR", json={field: choice})
    assert message.startswith(f"{field}.fallback:") and f"GET {endpoint}" in message, message
    assert "fallback" not in (await api.ok("GET", f"/assistant/{agent_id}"))[field]  # nothing stored
