"""More web calls than the server takes: every accepted call keeps everything said on it, the rest are refused
cleanly (503 OVER_CAPACITY with Retry-After), nothing answers 500 and the log has no "database is locked".

`talkwire serve` (FAKE providers) is a child process pinned to one core with TALKWIRE_MAX_CALLS=CAP (and, as
for any load test, no rate limits: `loadtest.server.local_server`); CALLERS
aiortc callers (this process, the other cores) each create a web call and offer at once. The accepted ones say
UTTERANCES sentences each, waiting for the agent's answer; the final transcriptions each caller got on its data
channel are then compared with the transcript in `GET /calls/{id}`. On SQLite and on PostgreSQL.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soxr
from webrtc_caller import CallerError, WebRtcCaller

from agent_runtime.providers.fake import FakeTTS
from loadtest.server import Target, local_server, plan_cpus

CALLERS = 12
CAP = 8
UTTERANCES = 3


@dataclass
class Outcome:
    create_status: int = 0
    offer_status: int = 0
    call_id: str | None = None
    heard: Counter[str] = field(default_factory=Counter)  # final transcriptions by role, at the caller


def finals(caller: WebRtcCaller) -> Counter[str]:
    return Counter(m.get("role", "") for m in caller.messages
                   if m.get("type") == "transcription" and m.get("is_final"))


async def one_caller(target: Target, speech: np.ndarray, start: asyncio.Event) -> Outcome:
    outcome = Outcome()
    caller = WebRtcCaller()
    try:
        await start.wait()
        async with httpx.AsyncClient(timeout=60) as http:
            try:
                created = await caller.create_call(http, target.base_url, target.agent_id, target.key)
                outcome.create_status, outcome.call_id = 200, created["call_id"]
                await caller.post_offer(http, created["worker_url"])
                outcome.offer_status = 200
            except CallerError as exc:
                if outcome.create_status:
                    outcome.offer_status = exc.status
                else:
                    outcome.create_status = exc.status
                return outcome
        await caller.wait_connected(30)
        listening = lambda m: m.get("type") == "agent_state" and m.get("state") == "listening"  # noqa: E731
        await caller.wait_for_message(listening, timeout=60)
        for turn in range(1, UTTERANCES + 1):
            caller.mic.play(speech)
            await caller.wait_for_message(lambda m, turn=turn: m.get("type") == "transcription"
                                          and m.get("role") == "agent" and m.get("is_final")
                                          and "said" in m.get("text", "").lower()
                                          and finals(caller)["user"] >= turn, timeout=60)
            await caller.wait_for_message(lambda m, turn=turn: listening(m) and finals(caller)["agent"] > turn,
                                          timeout=60)
        outcome.heard = finals(caller)
        return outcome
    finally:
        await caller.close()


async def saturate(workdir: Path, env: dict[str, str] | None = None) -> None:
    speech16 = FakeTTS().render("hello, can you hear me today")  # voiced enough for the VAD
    speech = np.concatenate([soxr.resample(speech16, 16000, 48000).astype(np.int16), np.zeros(48000, np.int16)])
    server_cpu, _ = plan_cpus(0)
    async with local_server("talkwire", workdir, cpu=server_cpu,
                            env={"TALKWIRE_MAX_CALLS": str(CAP), **(env or {})}) as target:
        start = asyncio.Event()
        calls = [asyncio.ensure_future(one_caller(target, speech, start)) for _ in range(CALLERS)]
        await asyncio.sleep(0.5)
        start.set()
        outcomes = await asyncio.gather(*calls)
        records = await read_records(target, [o.call_id for o in outcomes if o.offer_status == 200])
    log = (workdir / "talkwire-server.log").read_text(errors="replace")

    accepted = [o for o in outcomes if o.offer_status == 200]
    refused = [o for o in outcomes if o.offer_status != 200]
    statuses = Counter((o.create_status, o.offer_status) for o in outcomes)
    said = sum(o.heard.total() for o in accepted)
    stored = sum(len(r["transcript"]) for r in records.values())
    print(f"\n{CALLERS} callers, cap {CAP}: (create, offer) statuses {dict(statuses)}; "
          f"{said} final transcriptions heard on accepted calls, {stored} transcript turns stored")
    assert len(accepted) == CAP and len(refused) == CALLERS - CAP, statuses
    assert all(o.create_status == 200 and o.offer_status == 503 for o in refused), statuses
    for outcome in accepted:
        record = records[outcome.call_id]
        stored_roles = Counter(turn["role"] for turn in record["transcript"])
        assert stored_roles == outcome.heard, (outcome.call_id, stored_roles, outcome.heard)
        assert outcome.heard["user"] == UTTERANCES and record["status"] == "completed"
    assert "database is locked" not in log and "could not store" not in log, log[-3000:]
    assert " 500 " not in log and "Traceback" not in log, log[-3000:]


async def read_records(target: Target, call_ids: list[str | None]) -> dict[str, dict[str, Any]]:
    """The finished records of `call_ids` (waiting for each to be final)."""
    found: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=target.base_url, timeout=30,
                                 headers={"X-API-Key": target.secret or ""}) as http:
        for call_id in call_ids:
            assert call_id is not None
            for _ in range(300):
                record = (await http.get(f"/calls/{call_id}")).json()
                if record["status"] in ("completed", "failed"):
                    break
                await asyncio.sleep(0.1)
            found[call_id] = record
    return found


async def test_saturation_on_sqlite(tmp_path: Path) -> None:
    await saturate(tmp_path)


async def test_saturation_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    await saturate(tmp_path, {"TALKWIRE_DATABASE_URL": postgres_url})
