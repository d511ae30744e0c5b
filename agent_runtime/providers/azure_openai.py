"""LLM `AZURE`: Azure OpenAI chat completions, streamed with tool calls by the OpenAI-compatible client.

Protocol (sources in docs/providers.md): `POST {endpoint}/openai/deployments/{deployment}/chat/completions
?api-version={version}` with the `api-key` header; body and server-sent events are OpenAI's. An agent's
`model: {provider: "AZURE", model: "gpt-4.1-mini"}` names a model; the deployment is the model's name unless
the operator maps it to another (`TALKWIRE_AZURE_DEPLOYMENTS="gpt-4.1-mini=prod-mini"`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from .openai_compat import OpenAICompatLLM

DEFAULT_API_VERSION = "2024-10-21"
# The chat models listed when the operator names none: each is its own deployment name.
DEFAULT_MODELS = ("gpt-4.1-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini")


def deployments(entries: Iterable[str]) -> dict[str, str]:
    """"model" or "model=deployment" entries → {model: deployment}; none → the default models."""
    mapping: dict[str, str] = {}
    for entry in entries:
        model, _, deployment = entry.partition("=")
        if model.strip():
            mapping[model.strip()] = deployment.strip() or model.strip()
    return mapping or {model: model for model in DEFAULT_MODELS}


def chat_url(endpoint: str, deployment: str, api_version: str = DEFAULT_API_VERSION) -> str:
    return (f"{endpoint.rstrip('/')}/openai/deployments/{quote(deployment, safe='')}/chat/completions"
            f"?api-version={quote(api_version, safe='')}")


def azure_llm(model: str, *, endpoint: str, api_key: str, deployment_map: Mapping[str, str],
              api_version: str = DEFAULT_API_VERSION, timeout: float = 30.0) -> OpenAICompatLLM:
    deployment = deployment_map.get(model, model)
    return OpenAICompatLLM(endpoint, api_key, model, timeout, url=chat_url(endpoint, deployment, api_version),
                           headers={"api-key": api_key, "Accept": "text/event-stream"}, vendor="AZURE")
