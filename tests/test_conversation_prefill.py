"""Call start hands the agent's system prompt (in the call's language) to an LLM that can prefill it."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.stages import Stages
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.updates import Update

pytestmark = pytest.mark.asyncio


class PrefillingLLM(FakeLLM):
    def __init__(self) -> None:
        super().__init__()
        self.prefilled: list[list[dict[str, Any]]] = []

    async def prefill(self, messages: list[dict[str, Any]]) -> None:
        self.prefilled.append(messages)


def stages_for(llm: FakeLLM, **values: Any) -> Stages:
    config = AgentConfig(stt=FakeSTT(), llm=llm, tts=FakeTTS(), **values)
    stages = Stages(config, asyncio.Queue[Update](), lambda *_: None)
    stages.language.start()
    return stages


async def test_warm_prefills_the_system_prompt_in_the_calls_language() -> None:
    llm = PrefillingLLM()
    await stages_for(llm, agent_prompt="You sell phones.", language="hi-IN").warm()
    assert llm.prefilled == [[{"role": "system", "content": "You sell phones.\n\nAnswer in Hindi."}]]


async def test_a_failing_prefill_does_not_break_call_start() -> None:
    class Broken(PrefillingLLM):
        async def prefill(self, messages: list[dict[str, Any]]) -> None:
            raise RuntimeError("model file is gone")

    await stages_for(Broken()).warm()  # logged; the first turn reports a real failure
