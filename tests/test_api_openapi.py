"""The OpenAPI document and /docs, and schemathesis fuzzing every operation from that document.

schemathesis runs the app in-process over ASGI (it starts the app's lifespan itself) with the default
client's secret key: no 500s, every status documented, every response matching its schema.
"""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from control_api.app import create_app
from control_api.openapi import operations
from test_api_fixtures import Api, api, settings, test_registry  # noqa: F401  (fixtures)


async def test_document_lists_every_operation_with_its_errors(api: Api):
    document = await api.ok("GET", "/openapi.json", key=None)
    assert document["openapi"] == "3.1.0"
    declared = {(op.method.lower(), op.path) for op in operations(api.app.routes)}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == declared and len(declared) >= 50
    create = document["paths"]["/calls/create"]["post"]
    assert set(create["responses"]) >= {"200", "400", "401", "403", "404", "422", "503"}
    assert "INSUFFICIENT_SCOPE" in create["responses"]["403"]["description"]
    agent = document["paths"]["/assistant/{id}"]["get"]
    assert "AGENT_NOT_FOUND" in agent["responses"]["404"]["description"]
    schemas = document["components"]["schemas"]
    assert {"AgentCreate", "AgentDetail", "ToolCreate", "CampaignCreate", "ErrorEnvelope"} <= set(schemas)
    assert schemas["AgentCreate"]["required"] == ["name", "welcome_message", "agent_prompt"]
    assert (await api.call("GET", "/openapi.json", key=None)).json() == document  # cached, identical


async def test_docs_page_is_self_contained(api: Api):
    response = await api.call("GET", "/docs", key=None)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "openapi.json" in page and "<script>" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN


def real_objects(schema, headers: dict[str, str]) -> dict[str, str]:
    """One object of each kind, created through the API, so fuzzed requests can also aim at existing ids."""

    def post(path: str, body: dict | None = None, method: str = "POST", **params: str) -> dict:
        case = schema[path][method].Case(body=body, path_parameters=params, media_type="application/json")
        response = case.call(headers=headers)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    agent = post("/assistant", {"name": "Fuzz", "welcome_message": "Hi", "agent_prompt": "Be brief."})["id"]
    tool = post("/tools", {"name": "fuzz_tool", "description": "A tool", "type": "client"})["id"]
    trunk = post("/sip-trunks", {"host": "sip.example.net"})["id"]
    post("/phone-numbers/import", {"phone_number": "+918071387205", "agent_id": agent, "trunk_id": trunk})
    call = post("/calls/create", {"agent_id": agent, "type": "web"})["call_id"]
    return {
        "agent": agent,
        "tool": tool,
        "trunk": trunk,
        "call": call,
        "widget": post("/assistant/{id}/widget", method="GET", id=agent)["id"],
        "collection": post("/assistant/{id}/data-collection", {"key": "email", "prompt": "Email?"}, id=agent)["id"],
        "handler": post("/assistant/{id}/media-handlers",
                        {"reason": "kyc", "route": "vision", "inject_as": "user", "interrupt": False}, id=agent)["id"],
        "link": post("/assistant/{id}/tools", {"tool_id": tool}, id=agent)["id"],
        "campaign": post("/campaigns", {"name": "Fuzz", "agent_id": agent, "use_vanira_managed": True,
                                        "candidates": [{"phone": "+14155550100"}]})["campaign_id"],
        "lead": post("/calls/{id}", method="GET", id=call)["prospect"]["id"],
    }


def aimed_parameters(path: str, ids: dict[str, str]) -> dict[str, str]:
    """Path parameters of `path` that name the real objects."""
    kind = {"/assistant/widget/": "widget", "/assistant/data-collection/": "collection",
            "/assistant/media-handlers/": "handler", "/assistant/": "agent", "/tools/": "tool", "/calls/": "call",
            "/campaigns/": "campaign", "/sip-trunks/": "trunk", "/leads/": "lead"}
    first = next(ids[k] for prefix, k in kind.items() if path.startswith(prefix))
    params = {"id": first, "widget_id": first, "collection_id": first}
    if "{agent_tool_id}" in path:
        params["agent_tool_id"] = ids["link"]
    return params


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(settings):  # noqa: F811
    """Every operation, fuzzed from the document: a few generated requests each, all checks on each response.

    About half the requests to an operation with ids aim at real objects (except deletes, which would remove
    them for the operations after), so handlers run past the 404 with generated bodies.
    (Driven by hand rather than with schemathesis' pytest plugin, whose lazy loader fails on pytest 9.)
    """
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    app.state.runtime.providers = test_registry()
    headers = {"X-API-Key": settings.secret_key}
    ids = real_objects(schema, headers)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()
        if "{" in operation.path and operation.method.upper() != "DELETE":
            real = aimed_parameters(operation.path, ids)

            def aim(case, real=real):
                case.path_parameters.update({k: v for k, v in real.items() if k in case.path_parameters})
                return case

            strategy = st.one_of(strategy, strategy.map(aim))

        @given(case=strategy)
        @hypothesis_settings(max_examples=8, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup; collect them all
            failures.append(f"{operation.label}: {exc}")
        tested += 1
    assert tested >= 50
    assert not failures, "\n\n".join(failures)


async def test_methods_bodies_and_types_as_documented(api: Api):  # noqa: F811
    """405 lists every method of the path, also on fixed paths next to a parameter; PATCH needs a body; JSON
    numbers and flags have their JSON types; unknown keys are ignored whatever they hold."""
    document = await api.ok("GET", "/openapi.json", key=None)
    for method, path, allow in (("DELETE", "/phone-numbers/import", "POST"), ("GET", "/calls/create", "POST"),
                                ("PUT", "/assistant", "GET, HEAD, POST")):
        response = await api.call(method, path, json={})
        assert response.status_code == 405, (path, response.text)
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
        assert response.headers["allow"] == allow
        declared = {m.upper() for m in document["paths"][path]}
        assert declared <= set(response.headers["allow"].split(", "))
    agent = (await api.ok("POST", "/assistant", json={"name": "A", "welcome_message": "", "agent_prompt": "p"}))["id"]
    assert (await api.call("PATCH", f"/assistant/{agent}")).status_code == 400
    for bad in ({"active": 0}, {"temperature": "0.5"}, {"initial_disable_mic_duration": 1.5}):
        await api.error("PATCH", f"/assistant/{agent}", 422, "VALIDATION_ERROR", json=bad)
    await api.ok("PATCH", f"/assistant/{agent}", json={"active": False, "initial_disable_mic_duration": 2.0,
                                                       "unknown\u0000": "ignored\u0000"})
    assert (await api.call("GET", "/calls", params={"limit": "5"})).status_code == 200  # query text stays text
