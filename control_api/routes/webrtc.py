"""The worker URL: Phase 2 of a web call (the HTTP side; the flow itself is `control_api/web_calls.py`).

`POST /calls/create` returns `worker_url = <base>/webrtc?agent=<agent_id>_<call_id>`; the browser POSTs its
SDP offer there as `{"sdp": "...", "type": "offer"}` and gets `{"sdp": "...", "type": "answer"}`. The
unguessable call id is the capability (the seed's SDK sends no key here); it is good for one connection,
within OFFER_WINDOW of the call's creation.

Errors: unknown call → 404 CALL_NOT_FOUND; finished or expired → 410 CALL_ENDED; a second offer for a
connected call → 409 CALL_ALREADY_CONNECTED; malformed body or SDP → 400 INVALID_SDP / VALIDATION_ERROR; too
many offers from one address → 429 RATE_LIMITED, the tenant's live calls at their cap → 429 OVER_QUOTA, this
process full → 503 OVER_CAPACITY, the database failing → 503 SERVICE_UNAVAILABLE (each with Retry-After).
"""
from __future__ import annotations

import json
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_api.call_admission import client_address
from control_api.call_services import CallServices
from control_api.errors import ApiError
from control_api.web_calls import answer_offer, connectable_call

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 256 * 1024


def parse_worker_param(value: str | None) -> tuple[str, str]:
    """`<agent_id>_<call_id>` → (agent_id, call_id). Ids are UUIDs, which contain no underscore."""
    agent_id, sep, call_id = (value or "").rpartition("_")
    if not sep or not agent_id or not call_id:
        raise ApiError(404, "CALL_NOT_FOUND", "The worker URL names no call (expected ?agent=<agent_id>_<call_id>).")
    return agent_id, call_id


async def read_offer(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "The offer is too large.")
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", "body: expected JSON {\"sdp\": \"...\", \"type\": \"offer\"}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sdp"), str):
        raise ApiError(400, "VALIDATION_ERROR", "sdp: a string is required")
    if data.get("type", "offer") != "offer":
        raise ApiError(400, "VALIDATION_ERROR", "type: must be \"offer\"")
    return data["sdp"]


async def offer(request: Request) -> JSONResponse:
    services: CallServices = request.app.state.runtime.services
    agent_id, call_id = parse_worker_param(request.query_params.get("agent"))
    try:
        await services.admission.admit_offer(client_ip=client_address(request))  # before any database read
        call = await connectable_call(services, agent_id, call_id)
        answer = await answer_offer(services, call, await read_offer(request))
    except SQLAlchemyError as exc:
        log.warning("offer for call %s: the database failed (%s)", call_id, exc)
        raise ApiError(503, "SERVICE_UNAVAILABLE", "The server is busy; try again",
                       {"Retry-After": "1"}) from None
    return JSONResponse({"sdp": answer, "type": "answer"})


routes = [Route("/webrtc", offer, methods=["POST"])]
