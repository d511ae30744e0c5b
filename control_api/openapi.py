"""Declared API operations, and the OpenAPI 3.1 document generated from the same declarations.

A resource module declares each operation once:

    api = Resource("Agents")

    @api.get("/assistant/{id}", response=AgentDetail, errors=("AGENT_NOT_FOUND", "VALIDATION_ERROR"))
    async def get_agent(ctx: Ctx) -> AgentDetail: ...

    routes = api.routes

The declaration drives the request handling (authentication, then the body and query parsed into their
pydantic models, then the handler; the returned model is serialised with the same model) and the document:
the body, query and response schemas are the models' JSON schemas, and every error code an operation can
answer is listed under its HTTP status with the error envelope's schema. So the document cannot drift from
what the handlers accept and return; schemathesis checks that in the test suite.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from control_api.auth import Principal, authenticate
from control_api.errors import ApiError, validation_message
from control_api.schemas.common import E164_PATTERN, JSON_BODY, ErrorEnvelope, parse_uuid
from media import safe_json

log = logging.getLogger(__name__)

Auth = Literal["secret", "publishable", "none"]
MAX_BODY_BYTES = 1024 * 1024

# HTTP status of every error code the API answers. Lower-case codes are the seed's own spelling for the
# campaign endpoints; scripts written against the seed match on them, so they are kept as they are.
ERROR_STATUS: dict[str, int] = {
    "BAD_REQUEST": 400,
    "BAD_REQUEST_FORMAT": 400,
    "bad_request": 400,
    "UNAUTHORIZED": 401,
    "INVALID_API_KEY": 401,
    "INSUFFICIENT_SCOPE": 403,
    "ORIGIN_NOT_ALLOWED": 403,
    "CONFLICT": 409,
    "gateway_error": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "VALIDATION_ERROR": 422,
    "validation_error": 422,
    "DATABASE_ERROR": 500,
    "PERSISTENCE_ERROR": 500,
    "UPSTREAM_SERVICE_TIMEOUT": 503,
    # Accepting and refusing calls (docs/api.md, "Limits and refusals"): each comes with Retry-After but 409.
    "CALL_NOT_LIVE": 409,
    "RATE_LIMITED": 429,
    "OVER_QUOTA": 429,
    "OVER_CAPACITY": 503,
    "SERVICE_UNAVAILABLE": 503,
}


def error_status(code: str) -> int:
    return 404 if code.endswith("_NOT_FOUND") else ERROR_STATUS[code]


def api_error(code: str, message: str) -> ApiError:
    return ApiError(error_status(code), code, message)


@dataclass
class Ctx:
    """What a handler gets: the request, who is calling, and the parsed body and query."""

    request: Request
    principal: Principal | None
    body: Any = None
    query: Any = None

    @property
    def client_id(self) -> str:
        assert self.principal is not None, "operation declared without auth"
        return self.principal.client_id

    @property
    def runtime(self) -> Any:
        return self.request.app.state.runtime

    @property
    def db(self) -> Any:
        return self.runtime.db

    @property
    def settings(self) -> Any:
        return self.request.app.state.settings

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def uuid(self, name: str, code: str = "VALIDATION_ERROR") -> str:
        """The path parameter `name` as a canonical UUID, else `code` (404 codes read as "not found")."""
        raw = self.request.path_params[name]
        value = parse_uuid(raw)
        if value is None:
            if code.endswith("_NOT_FOUND"):
                raise api_error(code, f"No object with id {raw!r}")
            raise api_error(code, f"{name}: must be a UUID")
        return value


Handler = Callable[[Ctx], Awaitable[BaseModel | Response]]
InvalidBodyHook = Callable[[ValidationError], ApiError | None]


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    tag: str
    summary: str
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[str, ...] = ()
    auth: Auth = "secret"
    description: str | None = None
    response_media: dict[str, Any] = field(default_factory=dict)  # for non-JSON responses, e.g. audio/wav
    on_invalid_body: InvalidBodyHook | None = None
    database_error: str = "DATABASE_ERROR"  # the seed names it PERSISTENCE_ERROR for agent creation

    @property
    def all_errors(self) -> list[str]:
        codes: list[str] = []
        if self.auth != "none":
            codes += ["UNAUTHORIZED", "INVALID_API_KEY"]
            codes += ["INSUFFICIENT_SCOPE"] if self.auth == "secret" else ["ORIGIN_NOT_ALLOWED"]
        if self.body is not None:
            codes += ["BAD_REQUEST", "PAYLOAD_TOO_LARGE", "VALIDATION_ERROR"]
        if self.query is not None or "{" in self.path:
            codes.append("VALIDATION_ERROR")
        codes += self.errors
        if self.auth != "none":
            codes.append(self.database_error)
        return list(dict.fromkeys(codes))

    async def respond(self, request: Request) -> Response:
        try:
            return await self._respond(request)
        except SQLAlchemyError:
            log.exception("database error on %s %s", request.method, request.url.path)
            status = error_status(self.database_error)
            headers = {"Retry-After": "1"} if status == 503 else None
            raise ApiError(status, self.database_error, "The database failed to answer; try again", headers) from None

    async def _respond(self, request: Request) -> Response:
        principal = None
        if self.auth != "none":
            principal = await authenticate(request, publishable_ok=self.auth == "publishable")
        ctx = Ctx(request, principal)
        if self.query is not None:
            try:
                ctx.query = self.query.model_validate(dict(request.query_params))
            except ValidationError as exc:
                raise ApiError(422, "VALIDATION_ERROR", validation_message(exc)) from None
        if self.body is not None:
            ctx.body = await self._parse_body(request)
        result = await self.handler(ctx)
        if isinstance(result, Response):
            return result
        return JSONResponse(result.model_dump(mode="json"))

    async def _parse_body(self, request: Request) -> BaseModel:
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            _refused(request, "over_quota")
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"Body is larger than {MAX_BODY_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                _refused(request, "over_quota")
                raise ApiError(413, "PAYLOAD_TOO_LARGE", f"Body is larger than {MAX_BODY_BYTES} bytes")
        if not raw.strip() and request.method == "PATCH":
            raise ApiError(400, "BAD_REQUEST", "A JSON body is required: the fields to change")
        try:
            data = safe_json.parse(bytes(raw)) if raw.strip() else {}
        except safe_json.UnsafeJson as exc:
            if exc.code == "INVALID_JSON":
                raise ApiError(400, "BAD_REQUEST", "Body is not valid JSON") from None
            _refused(request, "bad_message")
            raise ApiError(400, "VALIDATION_ERROR", f"body: {exc.message}") from None
        assert self.body is not None
        try:
            return self.body.model_validate(data, context={JSON_BODY: True})
        except ValidationError as exc:
            custom = self.on_invalid_body(exc) if self.on_invalid_body else None
            raise (custom or ApiError(422, "VALIDATION_ERROR", validation_message(exc))) from None


# Paths declared without parameters (`/phone-numbers/import`): a route with a parameter there
# (`/phone-numbers/{number}`) does not take them, so another method on them is 405, not that route's 422.
_LITERAL_PATHS: set[str] = set()


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point, as Route.matches reads it."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path


def _refused(request: Request, reason: str) -> None:
    """Count a refusal in /metrics (talkwire_refusals_total)."""
    request.app.state.runtime.metrics.refused(reason)


class ApiRoute(Route):
    """A Starlette route that carries its Operation, so the document can be built from the app's routes."""

    def __init__(self, operation: Operation) -> None:
        super().__init__(operation.path, operation.respond, methods=[operation.method], name=operation.handler.__name__)
        self.operation = operation
        if not self.param_convertors:
            _LITERAL_PATHS.add(operation.path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE and self.param_convertors and _route_path(scope) in _LITERAL_PATHS:
            return Match.NONE, {}
        return match, child


class Resource:
    """Collects one resource module's operations as routes (the module exports `routes = api.routes`)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[BaseRoute] = []

    def operation(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            doc = (handler.__doc__ or "").strip()
            summary, _, rest = doc.partition("\n")
            op = Operation(
                method=method,
                path=path,
                handler=handler,
                tag=self.tag,
                summary=options.pop("summary", None) or summary.strip() or handler.__name__,
                description=options.pop("description", None) or (rest.strip() or None),
                **options,
            )
            self.routes.append(ApiRoute(op))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.operation("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.operation("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.operation("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.operation("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.operation("DELETE", path, **options)


# ---- the document ---------------------------------------------------------------------------------

NO_NUL = "^[^\\u0000]*$"  # request strings never hold U+0000 (PostgreSQL text cannot): the document says so


class _RequestJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON schema, plus what the request models refuse beyond it: NUL in strings and in keys."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        value = super().str_schema(schema)
        if self.mode == "validation" and "pattern" not in value and "format" not in value:
            value["pattern"] = NO_NUL
        return value

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        value = super().dict_schema(schema)
        if self.mode == "validation":
            value.setdefault("propertyNames", {"pattern": NO_NUL})
        return value


_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
REF = "#/components/schemas/{model}"


def operations(routes: Iterable[BaseRoute]) -> list[Operation]:
    return [route.operation for route in routes if isinstance(route, ApiRoute)]


def build_document(routes: Iterable[BaseRoute], *, title: str = "Talkwire control API", version: str = "0.1.0",
                   server_url: str | None = None) -> dict[str, Any]:
    ops = operations(routes)
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(ErrorEnvelope, "serialization")]
    for op in ops:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.query is not None:
            models.append((op.query, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
    keys, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=REF,
                                    schema_generator=_RequestJsonSchema)
    schemas = defs.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", op.path), {})[op.method.lower()] = _operation(op, keys, schemas)

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Agents, tools, calls, discovery, phone numbers, SIP trunks, campaigns and leads. "
            "Authenticate with `X-API-Key: sk_live_…` (or `Authorization: Bearer …`); publishable keys "
            "(`pk_live_…`) may only create web calls and read ICE servers.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in ops)],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _operation(op: Operation, keys: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": op.handler.__name__,
    }
    if op.description:
        spec["description"] = op.description
    spec["security"] = [] if op.auth == "none" else [{"ApiKey": []}, {"Bearer": []}]

    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        query_schema = _resolve(keys[(op.query, "validation")], schemas)
        required = set(query_schema.get("required", ()))
        for name, schema in query_schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": schema}
            if "description" in schema:
                param["description"] = schema["description"]
            parameters.append(param)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": keys[(op.body, "validation")]}},
        }

    responses: dict[str, Any] = {}
    if op.response is not None:
        responses["200"] = {
            "description": "Success",
            "content": {"application/json": {"schema": keys[(op.response, "serialization")]}},
        }
    else:
        responses["200"] = {"description": "Success", "content": op.response_media}
    by_status: dict[int, list[str]] = {}
    for code in op.all_errors:
        by_status.setdefault(error_status(code), []).append(code)
    envelope = keys[(ErrorEnvelope, "serialization")]
    for status in sorted(by_status):
        responses[str(status)] = {
            "description": ", ".join(by_status[status]),
            "content": {"application/json": {"schema": envelope}},
        }
    spec["responses"] = responses
    return spec


def _path_schema(name: str) -> dict[str, Any]:
    """Every path id is a UUID, except a phone number (E.164, `+` URL-encoded as %2B)."""
    if name == "number":
        return {"type": "string", "pattern": E164_PATTERN.pattern, "examples": ["+918071387205"]}
    return {"type": "string", "format": "uuid"}


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return schemas[ref.rsplit("/", 1)[1]] if ref else schema
