"""What a call used of each provider, for cost comparisons: STT audio seconds, TTS characters, LLM tokens.

The conversation counts what it sends (audio to STT, text to TTS) itself, so every provider is measured the
same way; LLM tokens are what the model's server reports (`usage` on providers that read it from the stream,
as OpenAI, Azure and Groq send it), so they are taken from the provider's own totals.
"""
from __future__ import annotations

from collections.abc import Iterable

Totals = dict[str, dict[str, float]]  # provider -> {"stt_audio_s" | "tts_characters" | "prompt_tokens" | …}


def vendor_of(provider: object) -> str:
    """The provider's name for usage and failure counts (`DEEPGRAM`, `AZURE`, …)."""
    return str(getattr(provider, "vendor", None) or type(provider).__name__)


class Meter:
    def __init__(self) -> None:
        self._counted: Totals = {}
        self._llms: list[object] = []

    def add(self, provider: str, item: str, amount: float) -> None:
        items = self._counted.setdefault(provider, {})
        items[item] = items.get(item, 0.0) + amount

    def watch_llms(self, llms: Iterable[object]) -> None:
        """Read token totals from these models (their `usage` dict, where they keep one)."""
        for llm in llms:
            if llm not in self._llms:
                self._llms.append(llm)

    def totals(self) -> Totals:
        totals = {provider: dict(items) for provider, items in self._counted.items()}
        for llm in self._llms:
            usage = getattr(llm, "usage", None)
            if not isinstance(usage, dict):
                continue
            items = totals.setdefault(vendor_of(llm), {})
            for key in ("prompt_tokens", "completion_tokens"):
                if usage.get(key):
                    items[key] = items.get(key, 0.0) + float(usage[key])
        return {provider: items for provider, items in totals.items() if items}


def since(now: Totals, before: Totals) -> Totals:
    """What was used between two `totals()`."""
    out: Totals = {}
    for provider, items in now.items():
        delta = {k: round(v - before.get(provider, {}).get(k, 0.0), 3) for k, v in items.items()}
        delta = {k: v for k, v in delta.items() if v}
        if delta:
            out[provider] = delta
    return out
