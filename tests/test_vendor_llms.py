"""LLM AZURE and GROQ: the OpenAI-compatible streaming client with each vendor's URL and authentication;
and the faults every LLM endpoint may show (not a stream, keep-alive comments only, refused)."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from openai_fake import OpenAIFake, openai_fake  # noqa: F401  (fixture)
from vendor_fakes.azure import AzureOpenAIFake

from agent_runtime.providers.azure_openai import azure_llm, chat_url, deployments
from agent_runtime.providers.base import ProviderError, TextDelta, ToolCallRequest
from agent_runtime.providers.groq import groq_llm
from agent_runtime.providers.openai_compat import OpenAICompatLLM

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


@pytest_asyncio.fixture
async def azure() -> AsyncIterator[AzureOpenAIFake]:
    async with AzureOpenAIFake() as fake:
        yield fake


async def collect(llm: OpenAICompatLLM, **kwargs: object) -> list[object]:
    return [chunk async for chunk in llm.stream(MESSAGES, **kwargs)]  # type: ignore[arg-type]


def make_azure(fake: AzureOpenAIFake, model: str = "gpt-4.1-mini", timeout: float = 5.0,
               mapping: dict[str, str] | None = None) -> OpenAICompatLLM:
    return azure_llm(model, endpoint=fake.endpoint, api_key=fake.api_key,
                     deployment_map=mapping or {}, timeout=timeout)


def test_deployment_names_and_url() -> None:
    assert deployments(["gpt-4.1-mini", "gpt-4o=prod-4o", " "]) == {"gpt-4.1-mini": "gpt-4.1-mini",
                                                                    "gpt-4o": "prod-4o"}
    assert "gpt-4.1-mini" in deployments([])
    assert chat_url("https://r.openai.azure.com/", "prod 4o", "2024-10-21") == (
        "https://r.openai.azure.com/openai/deployments/prod%204o/chat/completions?api-version=2024-10-21")


async def test_azure_streams_text_and_tool_calls_with_api_key(azure: AzureOpenAIFake) -> None:
    azure.add_tool_calls(("lookup_order", {"order_id": "A17"}), text="Let me check.", chunk_count=5)
    chunks = await collect(make_azure(azure, mapping={"gpt-4.1-mini": "prod-mini"}),
                           tools=[{"name": "lookup_order", "parameters": {"type": "object"}}])
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == "Let me check."
    assert [c for c in chunks if isinstance(c, ToolCallRequest)] == [
        ToolCallRequest("call_fake_0", "lookup_order", {"order_id": "A17"})]
    request = azure.requests[0]
    assert request.path == "/openai/deployments/prod-mini/chat/completions"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == azure.api_key and "authorization" not in request.headers
    assert request.body["stream"] is True and request.body["messages"] == MESSAGES


async def test_azure_errors(azure: AzureOpenAIFake) -> None:
    for status in (429, 500):
        azure.add_error(status)
        with pytest.raises(ProviderError, match=f"HTTP {status}.*scripted failure"):
            await collect(make_azure(azure))
    wrong = azure_llm("gpt-4.1-mini", endpoint=azure.endpoint, api_key="wrong", deployment_map={})
    with pytest.raises(ProviderError, match="HTTP 401"):
        await collect(wrong)


async def test_a_200_answer_that_is_not_a_stream_is_an_error(azure: AzureOpenAIFake) -> None:
    azure.not_a_stream = True
    with pytest.raises(ProviderError, match="not an event stream"):
        await collect(make_azure(azure))


async def test_keepalive_comments_do_not_hold_the_first_result(azure: AzureOpenAIFake) -> None:
    azure.keepalive_only_s = 3.0
    llm = make_azure(azure, timeout=5.0)
    llm.first_result_timeout = 0.5
    started = time.monotonic()
    with pytest.raises(ProviderError, match="nothing said within"):
        await collect(llm)
    assert time.monotonic() - started < 1.5


async def test_refused_endpoint_fails_fast() -> None:
    fake = await AzureOpenAIFake().start()
    endpoint = fake.endpoint
    await fake.stop()
    started = time.monotonic()
    with pytest.raises(ProviderError):
        await collect(azure_llm("gpt-4.1-mini", endpoint=endpoint, api_key="k", deployment_map={}, timeout=5))
    assert time.monotonic() - started < 2.0


async def test_groq_is_bearer_authenticated_openai(openai_fake: OpenAIFake) -> None:
    openai_fake.add_text("Hi from Groq.")
    llm = groq_llm("llama-3.3-70b-versatile", base_url=openai_fake.base_url, api_key=openai_fake.api_key)
    assert "".join(c.text for c in await collect(llm) if isinstance(c, TextDelta)) == "Hi from Groq."
    request = openai_fake.chat_requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    assert request.body["model"] == "llama-3.3-70b-versatile"


async def test_token_usage_is_counted_where_the_stream_reports_it(azure: AzureOpenAIFake) -> None:
    llm = make_azure(azure)
    await collect(llm)
    assert llm.usage == {"prompt_tokens": 0, "completion_tokens": 0}  # not reported: nothing counted
    azure.usage = {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38}
    chunks = await collect(llm)
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == azure.default_text
    await collect(llm)
    assert llm.usage == {"prompt_tokens": 62, "completion_tokens": 14}
