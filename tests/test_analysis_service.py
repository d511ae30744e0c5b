"""Post-call analysis end to end: a stored call, its agent's parameters, a local OpenAI-compatible endpoint."""
from __future__ import annotations

import asyncio
from typing import Any


from agent_runtime.providers.base import LanguageModel, ProviderError
from agent_runtime.providers.openai_compat import OpenAICompatLLM
from control_api.analysis.service import PostCallAnalysis, parse_model
from control_api.storage import Database
from control_api.storage.models import Agent, Call, CallEvent, Client, DataCollection, Prospect, utcnow
from tests.openai_fake import OpenAIFake, ScriptedReply, openai_fake  # noqa: F401  (fixture)

PARAMS = [
    {"key": "budget", "prompt": "The budget in dollars", "data_type": "number", "store_to_prospect_data": True},
    {"key": "interest", "prompt": "Interest in a demo", "data_type": "enum",
     "enum_values": ["Interested", "Not Interested"], "store_to_prospect": True, "prospect_column_name": "status"},
    {"key": "email", "prompt": "Their email", "data_type": "string", "store_to_prospect": True,
     "prospect_column_name": "email_id"},
    {"key": "wants_call_back", "prompt": "Wants a call back", "data_type": "boolean"},
    {"key": "ignored", "prompt": "Not active", "is_active": False},
]
ANSWER = {"budget": 5000, "interest": "interested", "email": "jo@example.com", "wants_call_back": "maybe",
          "is_call_successful": True}


async def seed_call(db: Database, turns: list[tuple[str, str]], *, metric: dict[str, Any] | None = None,
                    model: dict[str, str] | None = None, params: list[dict[str, Any]] = PARAMS) -> str:
    async with db.session() as session:
        client = Client(name="t")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="a", success_metric=metric,
                      model=model or {"provider": "OPENAI", "model": "fake-model"},
                      input_needed_json_format=["company"])
        prospect = Prospect(client_id=client.id, name="Jo", phone="+15550001111", prospect_data={"kept": 1})
        session.add_all([agent, prospect])
        await session.flush()
        session.add_all(DataCollection(client_id=client.id, agent_id=agent.id, **p) for p in params)
        call = Call(client_id=client.id, agent_id=agent.id, prospect_id=prospect.id, type="sip_call",
                    direction="outbound", status="completed", ended_at=utcnow())
        session.add(call)
        await session.flush()
        session.add_all(CallEvent(client_id=client.id, call_id=call.id, seq=i, kind="transcript",
                                  payload={"role": role, "text": text}) for i, (role, text) in enumerate(turns))
    return call.id


async def stored(db: Database, call_id: str) -> tuple[Call, Prospect]:
    async with db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None and call.prospect_id is not None
        prospect = await session.get(Prospect, call.prospect_id)
        assert prospect is not None
        return call, prospect


def analysis(db: Database, fake: OpenAIFake, **options: Any) -> PostCallAnalysis:
    def models(provider: str, model: str) -> LanguageModel:
        if provider != "OPENAI":
            raise ProviderError(f"no llm provider {provider}/{model}")
        return OpenAICompatLLM(fake.base_url, fake.api_key, model, timeout=5)

    async def no_wait(_: float) -> None:
        return None

    return PostCallAnalysis(db, models, sleep=no_wait, **{"timeout": 5.0, **options})


CONVERSATION = [("agent", "Hi, this is Acme."), ("user", "Hi. We have about 5000 dollars, mail jo@example.com")]


async def test_typed_values_land_and_wrong_types_are_dropped(db: Database, openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, CONVERSATION, metric={"criteria": "The person shares a budget"})
    openai_fake.add_tool_calls(("record_call_analysis", {**ANSWER, "company": "Acme"}))
    assert await analysis(db, openai_fake).run(call_id) == "done"
    call, prospect = await stored(db, call_id)
    assert call.call_data == [{"key": "budget", "value": 5000}, {"key": "interest", "value": "Interested"},
                              {"key": "email", "value": "jo@example.com"}, {"key": "company", "value": "Acme"}]
    assert call.is_successful is True
    assert call.extra_details["analysis"] == {"state": "done", "reason": None, "tries": 1,
                                              "dropped": ["wants_call_back"]}
    assert prospect.prospect_data == {"kept": 1, "budget": 5000}
    assert (prospect.status, prospect.email_id) == ("Interested", "jo@example.com")
    request = openai_fake.chat_requests[0].body
    assert len(openai_fake.chat_requests) == 1
    properties = request["tools"][0]["function"]["parameters"]["properties"]
    assert set(properties) == {"budget", "interest", "email", "wants_call_back", "company", "is_call_successful"}
    assert "5000 dollars" in request["messages"][-1]["content"]


async def test_a_failing_provider_is_retried(db: Database, openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, CONVERSATION)
    openai_fake.add_error(500)
    openai_fake.add_text("I think the budget is 5000.")  # malformed: no function call, no JSON
    openai_fake.add_tool_calls(("record_call_analysis", {"budget": 5000}))
    assert await analysis(db, openai_fake).run(call_id) == "done"
    call, _ = await stored(db, call_id)
    assert call.call_data == [{"key": "budget", "value": 5000}]
    assert call.is_successful is None  # the agent has no success metric
    assert call.extra_details["analysis"]["tries"] == 3


async def test_a_provider_that_never_answers_leaves_failed(db: Database, openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, CONVERSATION)
    for _ in range(3):
        openai_fake.add(ScriptedReply(text="{}", delay=3.0))
    assert await analysis(db, openai_fake, timeout=0.3).run(call_id) == "failed"
    call, prospect = await stored(db, call_id)
    assert call.extra_details["analysis"]["state"] == "failed"
    assert "no answer within 0.3 s" in call.extra_details["analysis"]["reason"]
    assert (call.call_data, call.is_successful, call.status) == ([], None, "completed")
    assert prospect.prospect_data == {"kept": 1}


async def test_malformed_tool_arguments_never_break_the_record(db: Database, openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, CONVERSATION)
    for _ in range(3):
        openai_fake.add_tool_calls(("record_call_analysis", '{"budget": 50'))
    assert await analysis(db, openai_fake).run(call_id) == "failed"
    call, _ = await stored(db, call_id)
    assert call.extra_details["analysis"]["state"] == "failed" and call.call_data == []


async def test_no_user_speech_skips_the_model(db: Database, openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, [("agent", "Hello? Anyone there?")], metric={"criteria": "x"})
    assert await analysis(db, openai_fake).run(call_id) == "done"
    call, _ = await stored(db, call_id)
    assert call.extra_details["analysis"] == {"state": "done", "reason": "no_user_speech", "tries": 0}
    assert call.is_successful is None and not openai_fake.chat_requests


async def test_the_analysis_model_setting_and_an_unknown_model(db: Database, openai_fake: OpenAIFake) -> None:
    assert parse_model("OPENAI/org/model-7b") == ("OPENAI", "org/model-7b")
    call_id = await seed_call(db, CONVERSATION, model={"provider": "LOCAL", "model": "tiny"})
    assert await analysis(db, openai_fake).run(call_id) == "failed"
    call, _ = await stored(db, call_id)
    assert call.extra_details["analysis"]["reason"].startswith("no model for the analysis")
    openai_fake.add_tool_calls(("record_call_analysis", {"budget": 7}))
    assert await analysis(db, openai_fake, model_override="OPENAI/analyst").run(call_id) == "done"
    assert openai_fake.chat_requests[0].body["model"] == "analyst"


async def test_schedule_runs_in_the_background_and_resume_finds_pending(db: Database,
                                                                        openai_fake: OpenAIFake) -> None:
    call_id = await seed_call(db, CONVERSATION)
    service = analysis(db, openai_fake)
    # (whichever request gets the slow reply, the answer is the same)
    openai_fake.add(ScriptedReply(tool_calls=[("record_call_analysis", {"budget": 2})], delay=0.5))
    task = service.schedule(call_id)
    for _ in range(500):  # until the request is under way
        if openai_fake.chat_requests:
            break
        await asyncio.sleep(0.01)
    await service.close(grace=0.05)  # stopped mid-request: left pending
    assert task.cancelled()
    call, _ = await stored(db, call_id)
    assert call.extra_details["analysis"]["state"] == "pending"
    openai_fake.add_tool_calls(("record_call_analysis", {"budget": 2}))
    assert await service.resume_pending() == 1
    await service.close(grace=10)
    call, _ = await stored(db, call_id)
    assert call.call_data == [{"key": "budget", "value": 2}]
