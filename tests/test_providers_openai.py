"""OPENAI provider against a real local HTTP server speaking the Chat Completions protocol."""
from __future__ import annotations

import asyncio

import pytest

from agent_runtime.providers.base import LanguageModel, ProviderError, TextDelta, ToolCallRequest
from agent_runtime.providers.openai_compat import OpenAICompatLLM, list_models
from openai_fake import OpenAIFake, openai_fake  # noqa: F401  (fixture)

MESSAGES = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hi"}]


async def collect(llm: OpenAICompatLLM, **kwargs) -> list:
    return [chunk async for chunk in llm.stream(MESSAGES, **kwargs)]


def make_llm(fake: OpenAIFake, model: str = "fake-model", timeout: float = 10.0) -> OpenAICompatLLM:
    return OpenAICompatLLM(fake.base_url, fake.api_key, model, timeout=timeout)


async def test_text_streams_in_several_deltas(openai_fake: OpenAIFake) -> None:
    openai_fake.add_text("Sure. The shop opens at nine.", chunk_count=5)
    llm = make_llm(openai_fake)
    assert isinstance(llm, LanguageModel)
    chunks = await collect(llm)
    assert all(isinstance(c, TextDelta) for c in chunks)
    assert len(chunks) >= 3
    assert "".join(c.text for c in chunks) == "Sure. The shop opens at nine."
    body = openai_fake.chat_requests[0].body
    assert body["stream"] is True
    assert body["model"] == "fake-model"
    assert body["messages"] == MESSAGES
    assert openai_fake.chat_requests[0].headers["authorization"] == f"Bearer {openai_fake.api_key}"


async def test_tool_calls_with_fragmented_arguments(openai_fake: OpenAIFake) -> None:
    openai_fake.add_tool_calls(
        ("get_weather", {"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}),
        ("end_call", {}),
        text="Let me check.", chunk_count=6)
    chunks = await collect(make_llm(openai_fake))
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    calls = [c for c in chunks if isinstance(c, ToolCallRequest)]
    assert text == "Let me check."
    assert calls == [
        ToolCallRequest("call_fake_0", "get_weather", {"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}),
        ToolCallRequest("call_fake_1", "end_call", {}),
    ]


async def test_malformed_tool_arguments_raise_provider_error(openai_fake: OpenAIFake) -> None:
    openai_fake.add_tool_calls(("get_weather", '{"city": "Par'))
    with pytest.raises(ProviderError, match="malformed JSON arguments"):
        await collect(make_llm(openai_fake))


async def test_sampling_tools_and_images_reach_the_endpoint(openai_fake: OpenAIFake) -> None:
    bare_tool = {"name": "lookup_order", "description": "Find an order",
                 "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}
    wrapped_tool = {"type": "function", "function": {"name": "end_call", "parameters": {"type": "object"}}}
    image_message = {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    llm = make_llm(openai_fake)
    chunks = [c async for c in llm.stream([image_message], tools=[bare_tool, wrapped_tool],
                                          temperature=0.3, top_p=0.9)]
    assert "".join(c.text for c in chunks) == openai_fake.default_text
    body = openai_fake.chat_requests[0].body
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["tools"] == [{"type": "function", "function": bare_tool}, wrapped_tool]
    assert body["messages"] == [image_message]


async def test_unset_sampling_is_not_sent(openai_fake: OpenAIFake) -> None:
    await collect(make_llm(openai_fake))
    body = openai_fake.chat_requests[0].body
    assert "temperature" not in body and "top_p" not in body and "tools" not in body


async def test_http_error_raises_provider_error(openai_fake: OpenAIFake) -> None:
    openai_fake.add_error(500)
    with pytest.raises(ProviderError, match="HTTP 500.*scripted failure"):
        await collect(make_llm(openai_fake))
    # the next turn works again
    assert "".join(c.text for c in await collect(make_llm(openai_fake))) == openai_fake.default_text


async def test_wrong_key_raises_provider_error(openai_fake: OpenAIFake) -> None:
    openai_fake.require_key = True
    llm = OpenAICompatLLM(openai_fake.base_url, "sk-wrong", "fake-model", timeout=10)
    with pytest.raises(ProviderError, match="HTTP 401"):
        await collect(llm)


async def test_slow_endpoint_times_out_as_provider_error(openai_fake: OpenAIFake) -> None:
    openai_fake.add_text("too late", delay=3.0)
    with pytest.raises(ProviderError):
        await collect(make_llm(openai_fake, timeout=0.5))


async def test_unreachable_endpoint_raises_provider_error() -> None:
    fake = OpenAIFake()
    await fake.start()
    base_url = fake.base_url
    await fake.stop()  # nothing listens on that port now
    with pytest.raises(ProviderError):
        await collect(OpenAICompatLLM(base_url, None, "fake-model", timeout=5))
    with pytest.raises(ProviderError):
        await list_models(base_url, None, timeout=5)


async def test_cancelling_closes_the_stream(openai_fake: OpenAIFake) -> None:
    openai_fake.add_text("one two three four five six seven eight", chunk_count=8, chunk_delay=0.2)
    llm = make_llm(openai_fake)
    first = asyncio.Event()

    async def consume() -> None:
        async for _chunk in llm.stream(MESSAGES):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # the server notices the closed connection when it next writes
        if openai_fake.streams_aborted:
            break
        await asyncio.sleep(0.05)
    assert openai_fake.streams_aborted == 1
    assert openai_fake.streams_finished == 0


async def test_list_models(openai_fake: OpenAIFake) -> None:
    openai_fake.models = ["llama3.2:1b", "qwen2.5:0.5b"]
    assert await list_models(openai_fake.base_url, openai_fake.api_key, timeout=5) == ["llama3.2:1b", "qwen2.5:0.5b"]
    openai_fake.models_status = 503
    with pytest.raises(ProviderError, match="HTTP 503"):
        await list_models(openai_fake.base_url, openai_fake.api_key, timeout=5)
