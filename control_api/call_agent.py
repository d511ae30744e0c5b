"""The agent a call runs: its stored record made into the conversation's config, with provider instances.

A stored agent names its providers (`model`, `voice`, `transcription`); a choice this server does not offer
falls back to the server's default for that kind, with a warning, so an agent made on another deployment
still answers.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from agent_runtime.agent_config import AgentConfig
from agent_runtime.providers.base import Kind, ProviderRegistry

log = logging.getLogger(__name__)

AgentRecord = Mapping[str, Any]  # an agent row's columns by name (control_api.storage.agents.load_agent)


def build_agent_config(agent: AgentRecord, providers: ProviderRegistry) -> AgentConfig:
    """The conversation's config: the agent's seed fields plus provider instances for its choices."""
    def choice(field: str, name_key: str) -> tuple[str | None, str | None]:
        value = agent.get(field) or {}
        return value.get("provider"), value.get(name_key)

    def create(kind: Kind, provider: str | None, name: str | None) -> object:
        if provider and name and providers.has(kind, provider, name):
            return providers.create(kind, provider, name)
        if provider or name:
            log.warning("agent %s: %s %s/%s is not configured here; using the default",
                        agent.get("id"), kind, provider, name)
        return providers.create(kind)

    def fallback(field: str, name_key: str, kind: Kind) -> object | None:
        value = (agent.get(field) or {}).get("fallback") or {}
        provider, name = value.get("provider"), value.get(name_key)
        if provider and name and providers.has(kind, provider, name):
            return providers.create(kind, provider, name)
        if provider or name:
            log.warning("agent %s: fallback %s %s/%s is not configured here; none", agent.get("id"), kind,
                        provider, name)
        return None

    local_voice = providers.defaults.get("tts")
    return AgentConfig.from_agent(
        agent,
        stt=create("stt", *choice("transcription", "model")),
        llm=create("llm", *choice("model", "model")),
        tts=create("tts", *choice("voice", "name")),
        stt_fallback=fallback("transcription", "model", "stt"),
        llm_fallback=fallback("model", "model", "llm"),
        tts_fallback=fallback("voice", "name", "tts"),
        local_tts=providers.create("tts") if local_voice and local_voice[0] in ("PIPER", "ESPEAK") else None,
    )
