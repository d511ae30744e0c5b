"""Post-call analysis in the database: what a call's analysis needs, its state, and where its results land.

The state is `calls.extra_details["analysis"]`: `{"state": "pending" | "done" | "failed", "reason": …}`.
Results: `calls.call_data` ([{key, value}]), `calls.is_successful` (the API's
`is_call_successful_according_to_agent_criteria`), and on the call's prospect (lead) `prospect_data` keys and
`store_to_prospect` columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from control_api.analysis.extract import Extraction
from control_api.analysis.fields import PROSPECT_COLUMNS, FieldSpec
from control_api.analysis.request import Turn
from control_api.storage import Database
from control_api.storage.models import Agent, Call, CallEvent, DataCollection, Prospect, utcnow


@dataclass(frozen=True, slots=True)
class AnalysisJob:
    call_id: str
    turns: list[Turn]
    fields: list[FieldSpec]  # active data_collection parameters, oldest first
    success_metric: dict[str, Any] | None
    input_format: list[Any]  # the agent's input_needed_json_format
    model: dict[str, Any]  # the agent's {provider, model}


def _spec(row: DataCollection) -> FieldSpec:
    column = row.prospect_column_name if row.prospect_column_name in PROSPECT_COLUMNS else None
    return FieldSpec(row.key, row.prompt, row.data_type, tuple(str(v) for v in row.enum_values or ()),
                     row.store_to_prospect, column, row.store_to_prospect_data, row.prospect_data_key)


async def load_job(db: Database, call_id: str) -> AnalysisJob | None:
    """What the call's analysis needs; None when the call (or its agent) is gone."""
    async with db.session() as session:
        call = await session.get(Call, call_id)
        agent = await session.get(Agent, call.agent_id) if call is not None else None
        if call is None or agent is None:
            return None
        events = (await session.scalars(select(CallEvent).where(
            CallEvent.call_id == call_id, CallEvent.kind == "transcript").order_by(CallEvent.seq))).all()
        params = (await session.scalars(select(DataCollection).where(
            DataCollection.agent_id == agent.id, DataCollection.is_active.is_(True))
            .order_by(DataCollection.created_at, DataCollection.id))).all()
    turns = [Turn(str(e.payload.get("role") or ""), str(e.payload.get("text") or "").strip())
             for e in events if str(e.payload.get("text") or "").strip()]
    return AnalysisJob(call_id, turns, [_spec(p) for p in params], agent.success_metric,
                       list(agent.input_needed_json_format or []), dict(agent.model or {}))


async def set_state(db: Database, call_id: str, state: str, reason: str | None = None) -> None:
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is not None:
            call.extra_details = {**(call.extra_details or {}), "analysis": {"state": state, "reason": reason}}


async def pending_call_ids(db: Database, within: timedelta = timedelta(days=1)) -> list[str]:
    """Calls ended in the last `within` whose analysis was started but never finished (the process stopped)."""
    async with db.session() as session:
        calls = (await session.scalars(select(Call).where(Call.ended_at >= utcnow() - within))).all()
    return [c.id for c in calls if ((c.extra_details or {}).get("analysis") or {}).get("state") == "pending"]


async def save_result(db: Database, call_id: str, result: Extraction, reason: str | None = None) -> None:
    """Store the analysis on the call and its prospect, and mark it done — one transaction."""
    async with db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            return
        call.call_data = list(result.call_data)
        call.is_successful = result.is_successful
        state: dict[str, Any] = {"state": "done", "reason": reason, "tries": result.tries}
        if result.dropped:
            state["dropped"] = list(result.dropped)
        call.extra_details = {**(call.extra_details or {}), "analysis": state}
        prospect = await session.get(Prospect, call.prospect_id) if call.prospect_id else None
        if prospect is not None and (result.prospect_data or result.prospect_columns):
            if result.prospect_data:
                prospect.prospect_data = {**(prospect.prospect_data or {}), **result.prospect_data}
            for column, value in result.prospect_columns.items():
                if column in PROSPECT_COLUMNS:
                    setattr(prospect, column, value)
            prospect.updated_at = utcnow()
