"""The OpenAPI document and /docs, and schemathesis fuzzing every operation from that document.

schemathesis runs the app in-process over ASGI (it starts the app's lifespan itself) with the default
client's secret key: no 500s, every status documented, every response matching its schema.
"""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given
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


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(settings):  # noqa: F811
    """Every operation, fuzzed from the document: a few generated requests each, all checks on each response.

    (Driven by hand rather than with schemathesis' pytest plugin, whose lazy loader fails on pytest 9.)
    """
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    app.state.runtime.providers = test_registry()
    headers = {"X-API-Key": settings.secret_key}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=6, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
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
