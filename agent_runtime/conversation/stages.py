"""The call's three provider stages as the conversation uses them: guarded by deadlines, each with the
agent's fallback (guarded.py), in the call's language (language.py), metered (usage.py).

Built from the agent's config when the call starts and again on agent_transfer. `warm()` when they are
built and `aclose()` when they are done reach the providers that have them (a vendor's connection made
ahead, a model loaded, the embedded LLM's system prompt evaluated before the agent's first turn).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.guarded import (
    FailureSink,
    GuardedLLM,
    GuardedSTT,
    GuardedTTS,
)
from agent_runtime.conversation.language import CallLanguage
from agent_runtime.conversation.usage import Meter, Totals, since, vendor_of
from agent_runtime.providers.base import StreamingSpeechToText
from agent_runtime.updates import Update

log = logging.getLogger(__name__)


class Stages:
    def __init__(self, config: AgentConfig, updates: asyncio.Queue[Update], on_failure: FailureSink,
                 meter: Meter | None = None, *, leg_rate: int | None = None) -> None:
        self.meter = meter or Meter()  # an agent_transfer keeps counting on the call's meter
        stage_s = config.stage_timeout_ms / 1000
        self.stt = GuardedSTT(config.stt, config.stt_fallback, on_failure, self.meter, stage_s)
        self.llm = GuardedLLM(config.llm, config.llm_fallback, on_failure, self.meter, stage_s,
                              config.turn_deadline_ms / 1000)
        self.tts = GuardedTTS(config.tts, config.tts_fallback, on_failure, self.meter, stage_s)
        if leg_rate is not None and leg_rate in getattr(config.tts, "sample_rates", ()):
            self.tts.sample_rate = leg_rate  # a voice that makes the leg's own rate: no resampling hop
        self._leg_rate = leg_rate
        self._agent_prompt = config.agent_prompt
        self.meter.watch_llms(self.llm.providers)
        self.language = CallLanguage(config, self.stt, self.tts, updates)
        self._turn_start: Totals = {}
        self._updates, self._on_failure = updates, on_failure

    def for_agent(self, config: AgentConfig) -> Stages:
        """agent_transfer: the new agent's stages, in its language, counting on this call's meter."""
        stages = Stages(config, self._updates, self._on_failure, self.meter, leg_rate=self._leg_rate)
        stages.language.start()
        return stages

    @property
    def streaming_stt(self) -> StreamingSpeechToText | None:
        """The agent's STT when it takes audio as it comes (then hearing streams to it)."""
        primary = self.stt.primary
        return primary if isinstance(primary, StreamingSpeechToText) else None

    def new_turn(self) -> None:
        """A caller's turn begins: every stage starts on its primary again; usage is counted from here."""
        for stage in (self.stt, self.llm, self.tts):
            stage.new_turn()
        self._turn_start = self.meter.totals()

    def turn_usage(self) -> Totals:
        return since(self.meter.totals(), self._turn_start)

    def served_by(self) -> dict[str, str]:
        """Which provider served each stage of this turn (a fallback when the primary failed)."""
        return {stage.stage: vendor_of(stage.current) for stage in (self.stt, self.llm, self.tts)}

    def _providers(self) -> list[Any]:
        return [*self.stt.providers, *self.llm.providers, *self.tts.providers]

    async def warm(self) -> None:
        """Call start: connect ahead / load what the STT providers have to (not a stream hearing opens), and
        let an LLM that evaluates prompts here (the embedded one) evaluate the system prompt now."""
        await asyncio.gather(self._warm_stt(), self._prefill_llm())

    async def _warm_stt(self) -> None:
        for provider in self.stt.providers:
            warm = getattr(provider, "warm", None)
            if warm is None or provider is self.streaming_stt:
                continue
            try:
                await warm()
            except Exception as exc:  # the first utterance will report it, with its fallback
                log.warning("warming %s failed: %s", vendor_of(provider), exc)

    async def _prefill_llm(self) -> None:
        prefill = getattr(self.llm.primary, "prefill", None)
        if prefill is None:
            return
        system = self.language.prompt(self._agent_prompt)
        try:
            await prefill([{"role": "system", "content": system}] if system else [])
        except Exception as exc:  # the first turn evaluates the prompt itself, and reports a real failure
            log.warning("prefilling %s failed: %s", vendor_of(self.llm.primary), exc)

    async def aclose(self) -> None:
        """Call end: release what the providers hold for this call (a connection made ahead)."""
        for provider in self._providers():
            close = getattr(provider, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as exc:
                log.warning("closing %s failed: %s", vendor_of(provider), exc)
