"""Web calls on the media worker: the browser's WebRTC offer answered and its leg joined to the agent.

    POST /calls/create type "web" ──► record `in-progress`, worker_url = <base>/webrtc?agent=<agent_id>_<call_id>
    POST worker_url {sdp offer} ──► connectable_call(...)   the call may take an offer (else 404/409/410)
                                ──► answer_offer(...)       WebRtcLeg answers; start_call(...) once it is up

The unguessable call id is the capability (the seed's SDK sends no key to the worker URL); it is good for one
connection, within TALKWIRE_WEB_CONNECT_TIMEOUT of the call's creation (after it the call fails as
`not_connected`, here or by `call_sweeper`). Offers are rate-limited per client address and held to the tenant's
quota and the process's capacity (`call_admission`). The HTTP side (query and body parsing) is
`control_api/routes/webrtc.py`.
"""
from __future__ import annotations

from datetime import timedelta

from control_api.call_services import CallServices
from control_api.call_session import start_call
from control_api.errors import ApiError
from control_api.storage import calls as call_store
from control_api.storage.agents import load_agent
from control_api.storage.models import Call, utcnow
from media.end_reason import EndReason
from signalling.webrtc import InvalidOffer, WebRtcLeg


async def connectable_call(services: CallServices, agent_id: str, call_id: str) -> Call:
    """The web call `call_id` of `agent_id`, if it can take an offer now.

    Unknown call → 404 CALL_NOT_FOUND; a second offer for a connected call → 409 CALL_ALREADY_CONNECTED;
    finished → 410 CALL_ENDED; never connected within TALKWIRE_WEB_CONNECT_TIMEOUT → 410 CALL_ENDED, and the
    record fails with `not_connected`."""
    call = await call_store.get_call(services.db, call_id)
    if call is None or call.agent_id != agent_id or call.type != "web_call":
        raise ApiError(404, "CALL_NOT_FOUND", "No such call.")
    if call_id in services.calls:
        raise ApiError(409, "CALL_ALREADY_CONNECTED", "This call is already connected; create a new call.")
    if call.status in call_store.FINAL_STATUSES or call.ended_at is not None:
        raise ApiError(410, "CALL_ENDED", "This call has ended; create a new call.")
    if utcnow() - call.call_triggered_at > timedelta(seconds=services.settings.web_connect_timeout):
        await call_store.finish_call(services.db, call_id, end_reason=EndReason.NOT_CONNECTED)
        raise ApiError(410, "CALL_ENDED", "This call was never connected and has expired; create a new call.")
    return call


async def answer_offer(services: CallServices, call: Call, sdp: str) -> str:
    """Answer the browser's offer for `call` and start the call on the new leg; the SDP answer.

    The agent deleted or deactivated meanwhile → 404 AGENT_NOT_FOUND; an offer that cannot be answered → 400
    INVALID_SDP."""
    agent = await load_agent(services.db, call.client_id, call.agent_id)
    if agent is None:
        raise ApiError(404, "AGENT_NOT_FOUND", "The call's agent no longer exists.")
    if not agent.get("active", True):
        raise ApiError(404, "AGENT_NOT_FOUND", "The call's agent is inactive (active: false).")
    # Reserved while we answer: a concurrent second offer gets 409. Quota and capacity are checked right before,
    # with no wait in between, so concurrent offers cannot all pass them.
    if call.id not in services.calls:
        services.admission.check_room(call.client_id, reserving=True)
    if not services.calls.reserve(call.id):
        raise ApiError(409, "CALL_ALREADY_CONNECTED", "This call is already connected; create a new call.")
    try:
        settings = services.settings
        leg, answer = await WebRtcLeg.accept(sdp, clock=services.clock, ice_servers=settings.ice_servers,
                                             host_addresses=settings.ice_host_addresses)
    except InvalidOffer as exc:
        services.calls.release(call.id)
        raise ApiError(400, "INVALID_SDP", str(exc)) from None
    except BaseException:
        services.calls.release(call.id)
        raise
    try:
        # A browser call is not an inbound phone call: the agent greets with its welcome_message.
        await start_call(services, leg, call_id=call.id, client_id=call.client_id, agent=agent,
                         direction="outbound", ready=leg.connected.wait())
    except BaseException:
        services.calls.release(call.id)
        await leg.hangup(EndReason.ERROR)
        raise
    return answer
