"""The embedded LLM evaluates a call's system prompt at call start, so the first turn answers sooner."""
from __future__ import annotations

import time

import pytest

from agent_runtime.providers.base import TextDelta
from agent_runtime.providers.local_llm import LocalLLM, available

pytestmark = [pytest.mark.models, pytest.mark.asyncio,
              pytest.mark.skipif(not available(), reason="the embedded SmolLM2 model is not installed")]

RULES = " ".join(f"Rule {i}: be polite, brief and precise about orders, refunds and deliveries."
                 for i in range(10))  # ~190 tokens: about a second to evaluate on one core
QUESTION = {"role": "user", "content": "Hello, where is my order?"}


def system(agent: str) -> dict[str, str]:
    return {"role": "system", "content": f"You are {agent}, a support agent. {RULES}"}


async def first_token_s(llm: LocalLLM, messages: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    async for chunk in llm.stream(messages):
        if isinstance(chunk, TextDelta) and chunk.text.strip():
            return time.perf_counter() - started
    raise AssertionError("no reply")


async def test_a_prefilled_prompt_answers_sooner_and_other_calls_keep_working() -> None:
    llm = LocalLLM()
    await llm.warm()
    cold = await first_token_s(llm, [system("Maya"), QUESTION])

    await llm.prefill([system("Ravi")])
    await llm.prefill([system("Anna")])  # another call starting in between: Ravi's state is kept
    warm = await first_token_s(llm, [system("Ravi"), QUESTION])
    assert warm < cold / 2, (warm, cold)

    other = await first_token_s(llm, [system("Anna"), QUESTION])  # the second call answers, from its own state
    assert other < cold / 2, (other, cold)


async def test_a_restored_state_answers_exactly_as_a_fresh_evaluation() -> None:
    """StatefulLlama saves and restores states without their logits rows: a turn started from a restored state
    (another call ran in between) must still answer word for word as a model that evaluated it all afresh."""
    from llama_cpp import Llama

    from agent_runtime.providers.local_llm import CONTEXT_TOKENS, load_llama, model_file

    path = model_file("smollm2-135m-instruct")
    messages = [system("Ravi"), QUESTION]

    def reply(llama: Llama) -> str:
        result = llama.create_chat_completion(messages=messages, max_tokens=24, temperature=0)
        return result["choices"][0]["message"]["content"]  # type: ignore[index]

    fresh = reply(Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=1, verbose=False))
    cached = load_llama(path, 1)  # what the engines run: StatefulLlama with the prompt-state cache
    cached.create_chat_completion(messages=[system("Ravi")], max_tokens=1, temperature=0)  # Ravi's prefill
    cached.create_chat_completion(messages=[system("Anna"), QUESTION], max_tokens=8, temperature=0)  # another call
    assert reply(cached) == fresh and fresh
