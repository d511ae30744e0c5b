"""The worker URL: Phase 2 of a web call.

`POST /calls/create` returns `worker_url = <base>/webrtc?agent=<agent_id>_<call_id>`; the browser POSTs its
SDP offer there as `{"sdp": "...", "type": "offer"}` and gets `{"sdp": "...", "type": "answer"}`. The
unguessable call id is the capability (the seed's SDK sends no key here); it is good for one connection,
within OFFER_WINDOW of the call's creation.

Errors: unknown call → 404 CALL_NOT_FOUND; finished or expired → 410 CALL_ENDED; a second offer for a
connected call → 409 CALL_ALREADY_CONNECTED; malformed body or SDP → 400 INVALID_SDP / VALIDATION_ERROR.
"""
from __future__ import annotations

import json
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from control_api.call_session import CallSession, load_agent, load_agent_tools
from control_api.errors import ApiError
from control_api.storage import calls as call_store
from control_api.storage.models import utcnow
from signalling.webrtc import InvalidOffer, WebRtcLeg

OFFER_WINDOW = timedelta(minutes=10)
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
    runtime = request.app.state.runtime
    agent_id, call_id = parse_worker_param(request.query_params.get("agent"))
    call = await call_store.get_call(runtime.db, call_id)
    if call is None or call.agent_id != agent_id or call.type != "web_call":
        raise ApiError(404, "CALL_NOT_FOUND", "No such call.")
    if call_id in runtime.calls:
        raise ApiError(409, "CALL_ALREADY_CONNECTED", "This call is already connected; create a new call.")
    if call.status in call_store.FINAL_STATUSES or call.ended_at is not None:
        raise ApiError(410, "CALL_ENDED", "This call has ended; create a new call.")
    if utcnow() - call.call_triggered_at > OFFER_WINDOW:
        await call_store.finish_call(runtime.db, call_id, status="failed", end_reason="connect_timeout")
        raise ApiError(410, "CALL_ENDED", "This call was never connected and has expired; create a new call.")
    sdp = await read_offer(request)
    agent = await load_agent(runtime.db, call.client_id, agent_id)
    if agent is None:
        raise ApiError(404, "AGENT_NOT_FOUND", "The call's agent no longer exists.")
    runtime.calls[call_id] = None  # reserve: a concurrent second offer gets 409 while we answer
    try:
        settings = runtime.settings
        leg, answer = await WebRtcLeg.accept(
            sdp, clock=runtime.clock, ice_servers=settings.ice_servers, host_addresses=settings.ice_host_addresses)
    except InvalidOffer as exc:
        runtime.calls.pop(call_id, None)
        raise ApiError(400, "INVALID_SDP", str(exc)) from None
    except BaseException:
        runtime.calls.pop(call_id, None)
        raise
    # A browser call is not an inbound phone call: the agent greets with its welcome_message.
    session = CallSession(runtime, call_id, call.client_id, leg, direction="outbound", ready=leg.connected.wait())
    session.start(agent, await load_agent_tools(runtime.db, agent_id))
    return JSONResponse({"sdp": answer, "type": "answer"})


routes = [Route("/webrtc", offer, methods=["POST"])]
