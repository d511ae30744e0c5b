"""Calls: `POST /calls/create`, `GET /calls`, `GET /calls/{id}`, the call's recording, `POST /calls/{id}/end`.

A web call is a record plus a worker URL: the browser SDK posts its WebRTC offer to `worker_url`, and the
media worker joins that leg to the agent. SIP calls go through `create_sip_call`, the one seam the SIP
dialer replaces. New calls pass `call_admission` first (rate limits, the tenant's quota, this process's capacity).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.responses import FileResponse, Response

from control_api.auth import or_404
from control_api.call_admission import client_address
from control_api.cluster.wiring import cancel_spot, forward_to_owner, web_call_spot
from control_api.openapi import Ctx, Resource, api_error
from control_api.schemas.call_control import CallEnded
from control_api.schemas.calls import (
    AgentRef,
    AgentWithClient,
    CallCreate,
    CallCreated,
    CallDetail,
    CallList,
    CallListQuery,
    CallSummary,
    ClientRef,
    KeyValue,
    ProspectDetail,
    ProspectRef,
    SipData,
    TimelineEvent,
    TranscriptTurn,
)
from control_api.schemas.common import parse_uuid
from control_api.sip_dispatch import SipUnavailable
from control_api.storage import calls as call_store
from control_api.storage.models import Agent, Call, Prospect
from control_api.storage.owned import get_owned
from control_api.storage.phone_numbers import find_number
from media.end_reason import EndReason

api = Resource("Calls")

CALL_404 = ("CALL_NOT_FOUND", "Call not found")


# ---- create ---------------------------------------------------------------------------------------

async def create_sip_call(ctx: Ctx, agent: Agent, data: SipData, to_number: str,
                          prospect_id: str | None) -> CallCreated:
    """Dial `to_number` for `agent` and return {call_id, status: "triggered", worker_url: None}.

    The body has been validated (E.164 numbers, `from_number` one of the client's numbers, the prospect
    the client's) before this runs. The call goes on in the background (control_api/sip_dispatch.py); a
    server that cannot dial (SIP off, no trunk) answers the seed's UPSTREAM_SERVICE_TIMEOUT.
    """
    sip = ctx.runtime.sip
    if sip is None:
        raise api_error("UPSTREAM_SERVICE_TIMEOUT", "SIP is off on this server (TALKWIRE_SIP_BIND=off)")
    try:
        call_id = await sip.dial(client_id=ctx.client_id, agent_id=agent.id, to_number=to_number, name=data.name,
                                 from_number=data.from_number, ring_timeout=data.ring_timeout_seconds,
                                 prospect_id=prospect_id)
    except SipUnavailable as exc:
        raise api_error("UPSTREAM_SERVICE_TIMEOUT", str(exc)) from None
    call = await call_store.get_call(ctx.db, call_id)
    return CallCreated(call_id=call_id, status="triggered", worker_url=None,
                       prospect_id=call.prospect_id if call is not None else None)


@api.post(
    "/calls/create",
    body=CallCreate,
    response=CallCreated,
    auth="publishable",
    errors=("AGENT_NOT_FOUND", "PROSPECT_NOT_FOUND", "CALL_NOT_FOUND", "INSUFFICIENT_SCOPE",
            "UPSTREAM_SERVICE_TIMEOUT", "RATE_LIMITED", "OVER_QUOTA", "OVER_CAPACITY"),
    database_error="SERVICE_UNAVAILABLE",
)
async def create_call(ctx: Ctx) -> CallCreated:
    """Start a call: "web" returns the worker URL the browser SDK connects to; "sip" dials a phone.

    Publishable keys may create web calls only. Without `prospect_id` an anonymous prospect (lead) is
    created. `call_id` of an earlier web call of the same prospect continues that session: the agent goes on
    with its history and context, without a second welcome. An inactive (`active: false`) or deleted agent
    takes no call (AGENT_NOT_FOUND). Refusals come with `Retry-After`: 429 RATE_LIMITED (publishable key: per
    key and per client address), 429 OVER_QUOTA (your live calls at their cap), 503 OVER_CAPACITY (the server
    is full), 503 SERVICE_UNAVAILABLE (the database failed to answer).
    """
    body: CallCreate = ctx.body
    dial: tuple[SipData, str] | None = None  # a phone call: its sip_data and the number to dial
    if body.type == "sip":
        if ctx.principal is None or not ctx.principal.is_secret:
            raise api_error("INSUFFICIENT_SCOPE", "Publishable keys (pk_live_…) can only create web calls")
        if body.sip_data is None or body.sip_data.to is None:
            raise api_error("VALIDATION_ERROR", 'sip_data.to: required when type is "sip"')
        dial = body.sip_data, body.sip_data.to
    db, client_id = ctx.db, ctx.client_id
    agent = or_404(await get_owned(db, Agent, client_id, parse_uuid(body.agent_id)),
                   "AGENT_NOT_FOUND", "Agent not found")
    if not agent.active:
        raise api_error("AGENT_NOT_FOUND", "Agent is inactive (active: false): it takes no calls")
    assert ctx.principal is not None
    await ctx.runtime.services.admission.admit_create(
        client_id=client_id, key_id=ctx.principal.key_id, publishable=not ctx.principal.is_secret,
        client_ip=client_address(ctx.request))
    prospect_id = None
    if body.prospect_id is not None:
        prospect = or_404(await get_owned(db, Prospect, client_id, parse_uuid(body.prospect_id)),
                          "PROSPECT_NOT_FOUND", "Prospect not found")
        prospect_id = prospect.id
    previous = None
    if body.call_id is not None:
        previous = or_404(await get_owned(db, Call, client_id, parse_uuid(body.call_id)), *CALL_404)
        if previous.type != "web_call":
            raise api_error("VALIDATION_ERROR", "call_id: only a web call can be continued")
        if prospect_id is not None and previous.prospect_id not in (None, prospect_id):
            raise api_error("CALL_NOT_FOUND", "call_id: no call of this prospect has that id")
        prospect_id = prospect_id or previous.prospect_id
    if dial is not None:
        data, to_number = dial
        if data.from_number is not None and await find_number(ctx.db, ctx.client_id, data.from_number) is None:
            raise api_error("VALIDATION_ERROR",
                            "sip_data.from_number: not one of your phone numbers (see GET /phone-numbers)")
        return await create_sip_call(ctx, agent, data, to_number,
                                     parse_uuid(body.prospect_id) if body.prospect_id else None)

    spot = await web_call_spot(ctx.runtime.services)  # this process, or the member of a deployment placed on
    try:
        call = await call_store.create_call(
            ctx.db,
            client_id=ctx.client_id,
            agent_id=agent.id,
            type="web_call",
            direction="inbound",
            status="in-progress",
            prospect_id=prospect_id,
            prospect_name=body.sip_data.name if body.sip_data else None,
            call_id=spot.call_id,
            worker=spot.worker,
        )
    except BaseException:
        await cancel_spot(ctx.runtime.services, spot)
        raise
    if previous is not None:
        await call_store.update_call(ctx.db, call.id, continues_call_id=previous.id)
    worker_url = f"{spot.base_url}/webrtc?agent={agent.id}_{call.id}"
    return CallCreated(call_id=call.id, status=call.status, worker_url=worker_url, prospect_id=call.prospect_id)


# ---- read -----------------------------------------------------------------------------------------

def recording_url(ctx: Ctx, call: Call) -> str | None:
    return f"{ctx.settings.base_url}/calls/{call.id}/recording" if call.recording_path else None


def _prospect_ref(prospect: Prospect | None) -> ProspectRef | None:
    return None if prospect is None else ProspectRef(id=prospect.id, name=prospect.name, phone=prospect.phone)


def call_summary(ctx: Ctx, row: call_store.CallRow) -> CallSummary:
    call = row.call
    return CallSummary(
        id=call.id,
        agent_id=call.agent_id,
        client_id=call.client_id,
        phone_to=call.phone_to,
        phone_from=call.phone_from,
        status=call.status,
        direction=call.direction,
        type=call.type,
        created_at=call.created_at,
        duration=call.duration,
        recording_url=recording_url(ctx, call),
        is_call_successful_according_to_agent_criteria=call.is_successful,
        prospect=_prospect_ref(row.prospect),
        agent=AgentRef(id=row.agent.id, name=row.agent.name),
        call_data=list(call.call_data or []),
    )


@api.get("/calls", query=CallListQuery, response=CallList)
async def list_calls(ctx: Ctx) -> CallList:
    """List your calls, newest first; filter by agent_id, status and campaign_id, page with limit (≤ 500) and
    offset."""
    query: CallListQuery = ctx.query
    agent_id = campaign_id = None
    if query.agent_id is not None:
        agent_id = parse_uuid(query.agent_id)
        if agent_id is None:
            raise api_error("VALIDATION_ERROR", "agent_id: must be a UUID")
    if query.campaign_id is not None:
        campaign_id = parse_uuid(query.campaign_id)
        if campaign_id is None:
            raise api_error("VALIDATION_ERROR", "campaign_id: must be a UUID")
    rows, total = await call_store.call_page(ctx.db, ctx.client_id, limit=query.limit, offset=query.offset,
                                             agent_id=agent_id, status=query.status, campaign_id=campaign_id)
    return CallList(calls=[call_summary(ctx, row) for row in rows], total=total)


@api.get("/calls/{id}", response=CallDetail, errors=("CALL_NOT_FOUND",))
async def get_call(ctx: Ctx) -> CallDetail:
    """Get one call with its prospect, agent, extracted data, transcript and timeline."""
    record = or_404(await call_store.call_record(ctx.db, ctx.client_id, ctx.uuid("id")), *CALL_404)
    call, agent, client, prospect, events = record.call, record.agent, record.client, record.prospect, record.events
    transcript = [
        TranscriptTurn(role=str(e.payload.get("role") or ""), text=str(e.payload.get("text") or ""), at=e.created_at)
        for e in events if e.kind == "transcript"
    ]
    timeline = [TimelineEvent(seq=e.seq, kind=e.kind, at=e.created_at, data=dict(e.payload or {})) for e in events]
    prospect_detail = None
    if prospect is not None:
        prospect_detail = ProspectDetail(
            id=prospect.id, name=prospect.name, phone=prospect.phone,
            prospect_data=[KeyValue(key=k, value=v) for k, v in (prospect.prospect_data or {}).items()],
        )
    return CallDetail(
        id=call.id,
        agent_id=call.agent_id,
        client_id=call.client_id,
        phone_from=call.phone_from,
        phone_to=call.phone_to,
        status=call.status,
        direction=call.direction,
        type=call.type,
        call_triggered_at=call.call_triggered_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        duration=call.duration,
        end_reason=call.end_reason,
        extra_details=dict(call.extra_details or {}),
        provider_call_id=call.provider_call_id,
        continues_call_id=call.continues_call_id,
        is_call_successful_according_to_agent_criteria=call.is_successful,
        call_data=list(call.call_data or []),
        recording_url=recording_url(ctx, call),
        prospect=prospect_detail,
        agent=AgentWithClient(
            id=agent.id, name=agent.name, client=ClientRef(name=client.name, base_prospect_group_id=None)
        ),
        transcript=transcript,
        timeline=timeline,
        created_at=call.created_at,
    )


@api.get(
    "/calls/{id}/recording",
    response=None,
    response_media={"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    errors=("CALL_NOT_FOUND", "RECORDING_NOT_FOUND"),
)
async def get_recording(ctx: Ctx) -> FileResponse:
    """Download the call's stereo WAV recording (left: caller, right: agent)."""
    call = or_404(await get_owned(ctx.db, Call, ctx.client_id, ctx.uuid("id")), *CALL_404)
    if not call.recording_path:
        raise api_error("RECORDING_NOT_FOUND", "This call has no recording")
    path = await asyncio.to_thread(recording_file, ctx.settings.data_dir, call.recording_path)
    if path is None:
        raise api_error("RECORDING_NOT_FOUND", "The recording file is missing")
    return FileResponse(path, media_type="audio/wav", filename=f"{call.id}.wav")



def recording_file(data_dir: Path, stored: str) -> Path | None:
    """The WAV of a stored recording path: absolute as it is; relative to the data directory (how calls store
    it); records from before that stored the data directory in the path too (`data/recordings/…` for the
    default relative `--data-dir`), relative to the working directory. None when no such file exists."""
    path = Path(stored)
    candidates = [path] if path.is_absolute() else [data_dir / path, path]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


# ---- control ----------------------------------------------------------------------------------------

END_WAIT = 10.0  # seconds POST /calls/{id}/end waits for the record to be finished


@api.post("/calls/{id}/end", response=CallEnded, errors=("CALL_NOT_FOUND", "CALL_NOT_LIVE"))
async def end_call(ctx: Ctx) -> CallEnded | Response:
    """End a live call now (web or phone, also while a phone still rings): the record ends `completed`
    with `end_reason` "api_hangup" (a phone call not yet answered: `failed`, outcome as SIP reports it).

    Not in the seed. 409 CALL_NOT_LIVE when the call is not live on this server (finished, or a web call
    whose browser has not connected yet)."""
    call = or_404(await get_owned(ctx.db, Call, ctx.client_id, ctx.uuid("id")), *CALL_404)
    live = ctx.runtime.services.calls.get(call.id)
    sip = ctx.runtime.sip
    if live is not None:
        await live.leg.hangup(EndReason.API_HANGUP)
        over = asyncio.ensure_future(live.finished())
    elif sip is not None and sip.ringing(call.id):
        over = asyncio.ensure_future(sip.hang_up_ringing(call.id, EndReason.API_HANGUP))
    elif (answer := await forward_to_owner(ctx.runtime.services, ctx.request, call)) is not None:
        return answer  # live on another member of the deployment: its answer
    else:
        raise api_error("CALL_NOT_LIVE", f"The call is not live (status {call.status})")
    await asyncio.wait([over], timeout=END_WAIT)  # answered with the record as it is then, finished or not
    ended = or_404(await get_owned(ctx.db, Call, ctx.client_id, call.id), *CALL_404)
    return CallEnded(success=True, call_id=ended.id, status=ended.status, end_reason=ended.end_reason,
                     ended_at=ended.ended_at)


routes = api.routes
