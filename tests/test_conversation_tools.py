"""Conversation with a real LLM client (OPENAI provider against the local fake endpoint) and the real tools layer."""
from __future__ import annotations

import asyncio
import json

from agent_runtime.conversation import Conversation
from agent_runtime.providers.fake import FakeSTT
from agent_runtime.providers.openai_compat import OpenAICompatLLM
from agent_runtime.tools.executor import ToolExecutor
from openai_fake import OpenAIFake, openai_fake  # noqa: F401  (fixture)
from test_conversation_call import Call, config
from legs import MemoryLeg


def llm_for(fake: OpenAIFake) -> OpenAICompatLLM:
    return OpenAICompatLLM(fake.base_url, fake.api_key, "fake-model", timeout=10)


async def test_end_call_tool_finishes_the_sentence_then_hangs_up(openai_fake: OpenAIFake) -> None:
    openai_fake.add_tool_calls(("end_call", {}), text="Thanks for calling, goodbye!")
    leg = MemoryLeg(48000)
    call = Call(leg, Conversation(leg, config(llm=llm_for(openai_fake), agent_prompt="Be brief.",
                                               temperature=0.3, top_p=0.9)))
    await call.say()
    reason = await asyncio.wait_for(call.task, 20)
    assert reason == "agent_hangup"
    assert leg.hangup_reason == "agent_hangup"
    assert call.finals("agent") == ["Thanks for calling, goodbye!"]
    # The goodbye was played out before the hang-up.
    assert leg.outbound.queued_samples == 0 and leg.outbound.played_total == leg.outbound.pushed_total
    requests = openai_fake.chat_requests
    assert len(requests) == 1, "no LLM round after end_call"
    body = requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][-1] == {"role": "user", "content": "hello there"}
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call"]
    history = call.conversation.history.items
    assert history[-2]["tool_calls"][0]["function"]["name"] == "end_call"
    assert history[-1]["role"] == "tool" and history[-1]["tool_call_id"] == history[-2]["tool_calls"][0]["id"]
    await leg.close()


async def test_tool_result_goes_back_to_the_llm(openai_fake: OpenAIFake) -> None:
    """A server-side round trip through the real ToolExecutor: an unknown tool is an error outcome the
    LLM reads, then the LLM's second answer is spoken."""
    openai_fake.add_tool_calls(("lookup_hours", {"store": "north"}))
    openai_fake.add_text("I could not look that up, sorry.")
    leg = MemoryLeg(16000)
    tools = ToolExecutor([], channel=leg.channel, send_event=leg.send_event)
    conversation = Conversation(leg, config(llm=llm_for(openai_fake)), tools=tools)
    call = Call(leg, conversation)
    try:
        await call.say()
        await call.wait_final("agent", timeout=20)
        assert call.finals("agent") == ["I could not look that up, sorry."]
        second = openai_fake.chat_requests[1].body["messages"]
        assert second[-2]["tool_calls"][0]["function"]["name"] == "lookup_hours"
        assert second[-1]["role"] == "tool" and "no tool named" in second[-1]["content"]
    finally:
        await call.finish()
        await tools.aclose()


async def test_barge_in_cancels_pending_blocking_client_tools(openai_fake: OpenAIFake) -> None:
    openai_fake.add_tool_calls(("show_form", {}), text="Let me open a form for you, it takes a moment to load, "
                                                       "so please bear with me while I get it ready.")
    leg = MemoryLeg(48000)
    form = {"name": "show_form", "ref_code": "show_form", "description": "Show a form.", "type": "client",
            "execution_mode": "blocking", "parameters": []}
    tools = ToolExecutor([form], channel=leg.channel, send_event=leg.send_event)
    conversation = Conversation(leg, config(llm=llm_for(openai_fake), stt=FakeSTT("I want to sign up")),
                                tools=tools)
    call = Call(leg, conversation)
    try:
        await call.say()
        sent = await leg.wait_event(lambda e: e["type"] == "client_tool_call", timeout=20)
        # The page acknowledges over the data channel; the conversation routes it to the tools layer.
        leg.deliver_event({"type": "client_tool_ack", "tool_call_id": sent["tool_call_id"]})
        await call.wait_state("speaking")
        await asyncio.sleep(0.6)
        await call.say("Actually, never mind.", trailing_silence=0.1)
        cancel = await leg.wait_event(lambda e: e["type"] == "client_tool_cancel")
        assert cancel == {"type": "client_tool_cancel", "tool_call_id": sent["tool_call_id"], "reason": "barge_in"}
        assert leg.events_of("clearAudio")
        history = conversation.history.items
        call_message = next(m for m in history if m.get("tool_calls"))
        result = next(m for m in history if m["role"] == "tool")
        assert result["tool_call_id"] == sent["tool_call_id"]
        assert json.loads(result["content"])["status"] == "interrupted"
        assert call_message["content"].endswith("…")
        assert len(openai_fake.chat_requests) == 1, "the LLM must not be called again for the cancelled turn"
    finally:
        await call.finish()
        await tools.aclose()
