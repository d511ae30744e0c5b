"""Test doubles for the dialer: a virtual clock, and a call placer that follows a script and counts what is live."""
from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from control_api.dialer.loop import Dialer
from control_api.dialer.placer import Attempt, AttemptResult, CallCreated
from control_api.storage import Database
from control_api.storage.models import (
    Agent,
    Campaign,
    CampaignNumber,
    CampaignProspect,
    Client,
    PhoneNumber,
    Prospect,
)
from media.end_reason import EndReason


class VirtualClock:
    """Time that moves only when the test says so; `sleep` waits for virtual time."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), future))
        await future

    async def settle(self) -> None:
        """Let woken tasks run, including their database round trips (real I/O on threads)."""
        for _ in range(10):
            await asyncio.sleep(0)
        await asyncio.sleep(0.002)

    async def advance(self, seconds: float, step: float = 0.1) -> None:
        """Move time on in small steps, waking sleepers in order and letting them run."""
        target = self._mono + seconds
        while self._mono < target - 1e-9:
            delta = min(step, target - self._mono)
            self._mono += delta
            self._now += timedelta(seconds=delta)
            while self._sleepers and self._sleepers[0][0] <= self._mono + 1e-9:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await self.settle()


# an outcome to play: "answered", "busy", "no_answer", "failed", or "hang" (never returns)
OUTCOMES = {"busy": EndReason.BUSY, "no_answer": EndReason.NO_ANSWER, "failed": EndReason.NETWORK_ERROR}


@dataclass
class Dialled:
    attempt: Attempt
    at: float  # virtual monotonic time the call started
    wall: datetime


@dataclass
class ScriptedPlacer:
    """Answers each phone's attempts from its script (the last entry repeats); a call lasts `duration` seconds."""

    clock: VirtualClock
    script: dict[str, list[str]] = field(default_factory=dict)
    duration: float = 5.0
    calls: list[Dialled] = field(default_factory=list)
    live: Counter[str] = field(default_factory=Counter)  # campaign id -> live calls
    live_by_number: Counter[str | None] = field(default_factory=Counter)
    max_live: Counter[str] = field(default_factory=Counter)
    max_live_by_number: Counter[str | None] = field(default_factory=Counter)

    def attempts_of(self, phone: str) -> list[Dialled]:
        return [c for c in self.calls if c.attempt.phone_to == phone]

    async def place(self, attempt: Attempt, call_created: CallCreated) -> AttemptResult:
        n = len(self.attempts_of(attempt.phone_to))
        self.calls.append(Dialled(attempt, self.clock.monotonic(), self.clock.now()))
        plan = self.script.get(attempt.phone_to, ["answered"])
        outcome = plan[min(n, len(plan) - 1)]
        call_id = f"call-{len(self.calls)}"
        await call_created(call_id)
        self.live[attempt.campaign_id] += 1
        self.live_by_number[attempt.from_number] += 1
        self.max_live[attempt.campaign_id] = max(self.max_live[attempt.campaign_id], self.live[attempt.campaign_id])
        self.max_live_by_number[attempt.from_number] = max(self.max_live_by_number[attempt.from_number],
                                                           self.live_by_number[attempt.from_number])
        try:
            if outcome == "hang":
                await asyncio.Future()
            await self.clock.sleep(self.duration)
        finally:
            self.live[attempt.campaign_id] -= 1
            self.live_by_number[attempt.from_number] -= 1
        if outcome == "answered":
            return AttemptResult(True, EndReason.REMOTE_HANGUP, call_id)
        return AttemptResult(False, OUTCOMES[outcome], call_id)


async def seed_campaign(db: Database, phones: list[str], *, numbers: dict[str, int] | None = None,
                        managed: bool = False, **fields: object) -> str:
    """A client, agent and campaign with one candidate per phone; `numbers`: caller ID -> its concurrency cap."""
    async with db.session() as session:
        client = Client(name="test")
        session.add(client)
        await session.flush()
        agent = Agent(client_id=client.id, name="dialer agent")
        session.add(agent)
        await session.flush()
        settings: dict[str, object] = {"name": "c", "status": "active", "timezone": "UTC",
                                       "call_hours_start": "00:00:00", "call_hours_end": "00:00:00",
                                       "call_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                     "Saturday", "Sunday"],
                                       "max_concurrent_calls": 3, "call_timeout_seconds": 20,
                                       "from_numbers": list(numbers or {}), "use_managed_numbers": managed}
        settings.update(fields)
        campaign = Campaign(client_id=client.id, agent_id=agent.id, **settings)
        session.add(campaign)
        await session.flush()
        for number, cap in (numbers or {}).items():
            phone_number = PhoneNumber(client_id=client.id, number=number)
            session.add(phone_number)
            await session.flush()
            session.add(CampaignNumber(client_id=client.id, campaign_id=campaign.id, phone_number_id=phone_number.id,
                                       max_concurrent_calls=cap))
        for i, phone in enumerate(phones):
            prospect = Prospect(client_id=client.id, name=f"p{i}", phone=phone, lead_source="campaign")
            session.add(prospect)
            await session.flush()
            session.add(CampaignProspect(client_id=client.id, campaign_id=campaign.id, prospect_id=prospect.id,
                                         created_at=datetime(2026, 1, 1) + timedelta(seconds=i)))
    return campaign.id


START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
PHONES = [f"+1555000{i:04d}" for i in range(10)]


async def run_for(dialer: Dialer, clock: VirtualClock, seconds: int) -> None:
    for _ in range(seconds):
        await dialer.tick()
        await clock.advance(1.0)


async def campaign(db: Database, campaign_id: str) -> Campaign:
    async with db.session() as session:
        row = await session.get(Campaign, campaign_id)
        assert row is not None
        return row


async def candidates(db: Database, campaign_id: str) -> dict[str, tuple[CampaignProspect, Prospect]]:
    async with db.session() as session:
        rows = (await session.execute(select(CampaignProspect, Prospect).join(
            Prospect, Prospect.id == CampaignProspect.prospect_id)
            .where(CampaignProspect.campaign_id == campaign_id))).all()
    return {prospect.phone or "": (row, prospect) for row, prospect in rows}
