"""LLM `GROQ`: Groq's OpenAI-compatible API (`https://api.groq.com/openai/v1`, `Authorization: Bearer`),
listed from its `GET /models` and streamed with tool calls by the OpenAI-compatible client."""
from __future__ import annotations

from .openai_compat import OpenAICompatLLM

DEFAULT_BASE_URL = "https://api.groq.com/openai/v1"


def groq_llm(model: str, *, base_url: str, api_key: str, timeout: float = 30.0) -> OpenAICompatLLM:
    return OpenAICompatLLM(base_url, api_key, model, timeout, vendor="GROQ")
