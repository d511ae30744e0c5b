"""Call records, written as the call happens.

Each function is its own short transaction, so a crash loses nothing already said: the transcript is a
sequence of `call_events` rows appended turn by turn, and status changes stamp their times as they occur.
A status change and its `status` timeline event are one transaction (and so are a call's final details and
its final status): whoever reads the call sees both or neither.

Status flow: `triggered` (SIP dialing) → `in-progress` (answered / web connected) → `completed` | `failed`.
A finished call never changes status again. Which final status a call gets is its end reason's
(`media.end_reason`): `finish_call` decides it, nobody else.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.storage import Database
from control_api.storage.models import Agent, Call, CallEvent, Client, Prospect, utcnow
from control_api.storage.owned import owned
from media.end_reason import EndReason, is_failure

CallType = Literal["web_call", "sip_call"]
CallStatus = Literal["triggered", "in-progress", "completed", "failed"]
FinalStatus = Literal["completed", "failed"]
FINAL_STATUSES = frozenset({"completed", "failed"})
MAX_CONTINUATION_HOPS = 20  # how far back a chain of continued web sessions is followed


def final_status(end_reason: str | EndReason | None) -> FinalStatus:
    """The stored status of a call that ended for `end_reason` (no reason: it simply completed)."""
    return "failed" if is_failure(end_reason) else "completed"


async def create_call(
    db: Database,
    *,
    client_id: str,
    agent_id: str,
    type: CallType,
    direction: Literal["inbound", "outbound"],
    status: CallStatus,
    prospect_id: str | None = None,
    prospect_name: str | None = None,
    phone_from: str | None = None,
    phone_to: str | None = None,
    campaign_id: str | None = None,
    provider_call_id: str | None = None,
    call_id: str | None = None,
    worker: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Call:
    """Insert a call; without `prospect_id` a prospect (lead) is created for it in the same transaction.

    `worker` names the process that runs the call (`extra_details.worker`): the one whose restart closes it if
    it is left open. The caller checks that `agent_id` and `prospect_id` belong to `client_id`.
    """
    now = utcnow()
    async with db.session() as session:
        if prospect_id is None:
            phone = phone_to if direction == "outbound" else phone_from
            prospect = Prospect(client_id=client_id, name=prospect_name or "Unknown", phone=phone, lead_source=type)
            session.add(prospect)
            await session.flush()
            prospect_id = prospect.id
        call = Call(
            client_id=client_id,
            agent_id=agent_id,
            prospect_id=prospect_id,
            campaign_id=campaign_id,
            type=type,
            direction=direction,
            status=status,
            phone_from=phone_from,
            phone_to=phone_to,
            provider_call_id=provider_call_id,
            call_triggered_at=now,
            answered_at=now if status == "in-progress" else None,
            extra_details={**(details or {}), **({"worker": worker} if worker is not None else {})},
        )
        if call_id is not None:
            call.id = call_id
        session.add(call)
    return call


async def get_call(db: Database, call_id: str) -> Call | None:
    async with db.session() as session:
        return await session.get(Call, call_id)


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call with what the API shows beside it."""

    call: Call
    agent: Agent
    prospect: Prospect | None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as `GET /calls/{id}` shows it: the row, whose it is, and its timeline in order."""

    call: Call
    agent: Agent
    client: Client
    prospect: Prospect | None
    events: list[CallEvent]


async def call_page(db: Database, client_id: str, *, limit: int, offset: int, agent_id: str | None = None,
                    status: str | None = None, campaign_id: str | None = None) -> tuple[list[CallRow], int]:
    """One page of the client's calls (of `agent_id`, in `status`, of `campaign_id`), newest first, and how many
    match in all."""
    conditions = [Call.client_id == client_id]
    if campaign_id is not None:
        conditions.append(Call.campaign_id == campaign_id)
    if agent_id is not None:
        conditions.append(Call.agent_id == agent_id)
    if status is not None:
        conditions.append(Call.status == status)
    page = (select(Call, Agent, Prospect)
            .join(Agent, Agent.id == Call.agent_id)
            .outerjoin(Prospect, Prospect.id == Call.prospect_id)
            .where(*conditions)
            .order_by(Call.created_at.desc(), Call.id)
            .limit(limit)
            .offset(offset))
    async with db.session() as session:
        total = await session.scalar(select(func.count(Call.id)).where(*conditions))
        rows = [CallRow(call, agent, prospect) for call, agent, prospect in (await session.execute(page)).all()]
    return rows, total or 0


async def call_record(db: Database, client_id: str, call_id: str) -> CallRecord | None:
    """The client's call with its agent, client, prospect and timeline (one read); None when not theirs."""
    async with db.session() as session:
        call = await owned(session, Call, client_id, call_id)
        if call is None:
            return None
        agent = await session.get(Agent, call.agent_id)
        client = await session.get(Client, call.client_id)
        prospect = await session.get(Prospect, call.prospect_id) if call.prospect_id else None
        query = select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.seq)
        events = list((await session.scalars(query)).all())
    if agent is None or client is None:  # cannot be: deleting either deletes its calls
        return None
    return CallRecord(call, agent, client, prospect, events)


def _duration(call: Call, ended: datetime) -> float | None:
    return None if call.answered_at is None else max(0.0, (ended - call.answered_at).total_seconds())


async def set_status(db: Database, call_id: str, status: CallStatus, *, end_reason: str | None = None) -> Call:
    """Move a call to `status`, stamping `answered_at` / `ended_at` / `duration`; a status event is logged in
    the same transaction. A call already completed or failed keeps its final status (returned unchanged)."""
    async with db.session() as session:
        return await _change_status(session, await _locked_call(session, call_id), status, end_reason)


async def finish_call(
    db: Database,
    call_id: str,
    *,
    end_reason: str | EndReason | None = None,
    status: FinalStatus | None = None,
    call_data: list[dict[str, Any]] | None = None,
    extra_details: Mapping[str, Any] | None = None,
    is_successful: bool | None = None,
) -> Call:
    """End a call with its outcome: the status (by default the end reason's, see `final_status`), the reason,
    extracted `call_data`, `extra_details` merged in. One transaction: whoever sees the call finished also
    sees why. A call already finished is returned unchanged."""
    async with db.session() as session:
        call = await _locked_call(session, call_id)
        if call.status not in FINAL_STATUSES:
            if call_data is not None:
                call.call_data = list(call_data)
            if extra_details:
                call.extra_details = {**(call.extra_details or {}), **extra_details}
            if is_successful is not None:
                call.is_successful = is_successful
        return await _change_status(session, call, status or final_status(end_reason),
                                    None if end_reason is None else str(end_reason))


async def fail_unconnected(db: Database, call_id: str) -> bool:
    """Fail a web call that never connected (no session ever started: no recording) with `not_connected`;
    False when it connected or finished meanwhile (checked under the call's lock)."""
    async with db.session() as session:
        call = await _locked_call(session, call_id)
        if call.status in FINAL_STATUSES or call.recording_path is not None:
            return False
        await _change_status(session, call, "failed", str(EndReason.NOT_CONNECTED))
        return True


async def _locked_call(session: AsyncSession, call_id: str) -> Call:
    call = await session.get(Call, call_id, with_for_update=True)
    if call is None:
        raise LookupError(f"no call {call_id}")
    return call


async def _change_status(session: AsyncSession, call: Call, status: CallStatus, end_reason: str | None) -> Call:
    if call.status in FINAL_STATUSES or call.status == status:
        return call
    now = utcnow()
    previous = call.status
    call.status = status
    if status == "in-progress" and call.answered_at is None:
        call.answered_at = now
    if status in FINAL_STATUSES:
        call.ended_at = now
        call.duration = _duration(call, now)
        call.end_reason = end_reason or call.end_reason
    payload = {"from": previous, "to": status, **({"reason": end_reason} if end_reason else {})}
    await _append(session, call.client_id, call.id, "status", payload)
    return call


async def set_recording(db: Database, call_id: str, path: str) -> None:
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise LookupError(f"no call {call_id}")
        call.recording_path = path


async def mark_running(db: Database, call_id: str, *, recording: str, worker: str) -> None:
    """The call's session started on `worker`, recording to `recording` (a path relative to the data
    directory): from now on the call is that worker's (`extra_details.worker`), and it has connected."""
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise LookupError(f"no call {call_id}")
        call.recording_path = recording
        if (call.extra_details or {}).get("worker") != worker:
            call.extra_details = {**(call.extra_details or {}), "worker": worker}


async def update_call(db: Database, call_id: str, **fields: Any) -> Call:
    """Set plain columns (e.g. provider_call_id, phone_from) on a call."""
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise LookupError(f"no call {call_id}")
        for name, value in fields.items():
            if not hasattr(Call, name):
                raise AttributeError(f"calls has no column {name!r}")
            setattr(call, name, value)
    return call


async def append_event(
    db: Database, client_id: str, call_id: str, kind: str, payload: Mapping[str, Any] | None = None
) -> CallEvent:
    """Append one timeline entry; `seq` numbers a call's events 1, 2, 3, … in the order they were stored.

    Appends to one call are serialised by locking the call's row (PostgreSQL) or the database (SQLite
    transactions begin immediate), so concurrent writers never pick the same `seq`.
    """
    async with db.session() as session:
        locked = await session.scalar(select(Call.id).where(Call.id == call_id).with_for_update())
        if locked is None:
            raise LookupError(f"no call {call_id}")
        return await _append(session, client_id, call_id, kind, payload)


async def append_events(db: Database, client_id: str, call_id: str,
                        entries: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[CallEvent]:
    """Append several timeline entries, in order, in one transaction (a busy call's queued updates are
    written together: one lock and one commit instead of one per entry)."""
    async with db.session() as session:
        locked = await session.scalar(select(Call.id).where(Call.id == call_id).with_for_update())
        if locked is None:
            raise LookupError(f"no call {call_id}")
        last = await session.scalar(select(func.max(CallEvent.seq)).where(CallEvent.call_id == call_id)) or 0
        events = [CallEvent(client_id=client_id, call_id=call_id, seq=last + i, kind=kind, payload=dict(payload or {}))
                  for i, (kind, payload) in enumerate(entries, start=1)]
        session.add_all(events)
    return events


async def _append(session: AsyncSession, client_id: str, call_id: str, kind: str,
                  payload: Mapping[str, Any] | None) -> CallEvent:
    """Add the call's next timeline event in `session`'s transaction (which holds the call's lock)."""
    last = await session.scalar(select(func.max(CallEvent.seq)).where(CallEvent.call_id == call_id))
    event = CallEvent(client_id=client_id, call_id=call_id, seq=(last or 0) + 1, kind=kind,
                      payload=dict(payload or {}))
    session.add(event)
    return event


async def add_transcript_turn(
    db: Database, client_id: str, call_id: str, role: Literal["user", "agent"], text: str, **extra: Any
) -> CallEvent:
    """A final transcript turn (user speech as recognised, agent text as actually played)."""
    return await append_event(db, client_id, call_id, "transcript", {"role": role, "text": text, **extra})


async def list_events(db: Database, call_id: str, kind: str | None = None) -> list[CallEvent]:
    query = select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.seq)
    if kind is not None:
        query = query.where(CallEvent.kind == kind)
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def transcript(db: Database, call_id: str) -> list[dict[str, Any]]:
    """The call's transcript as [{role, text, at}] in order."""
    return [
        {"role": e.payload.get("role"), "text": e.payload.get("text"), "at": e.created_at}
        for e in await list_events(db, call_id, "transcript")
    ]


async def history_from_timeline(db: Database, call_id: str) -> list[dict[str, Any]]:
    """The conversation of an ended web session (and the sessions it continued), rebuilt from the timeline:
    transcript turns as user/assistant messages, client context and events as system messages, in order."""
    chain: list[str] = []
    current: str | None = call_id
    while current and current not in chain and len(chain) < MAX_CONTINUATION_HOPS:
        chain.append(current)
        call = await get_call(db, current)
        current = call.continues_call_id if call is not None else None
    messages: list[dict[str, Any]] = []
    for earlier in reversed(chain):
        for event in await list_events(db, earlier):
            data = event.payload or {}
            if event.kind == "transcript" and data.get("text"):
                role = "assistant" if data.get("role") == "agent" else "user"
                messages.append({"role": role, "content": str(data["text"])})
            elif event.kind == "client" and isinstance(data.get("message"), dict):
                messages.append(dict(data["message"]))
    return messages
