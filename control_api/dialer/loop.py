"""The dialer: every tick, it places the calls that active campaigns are due, within every cap.

    Dialer.run() ── start-up: recover attempts this process left in flight (→ failed / worker_lost)
      └─ every tick (1 s, or sooner when a call ends):
           scheduled campaigns whose time has come → active
           renew this process's claims; give up claims whose lease ran out (another process died)
           per active campaign, inside its calling window: claim due candidates (storage.dialer.claim_attempts,
             one atomic step within the campaign's and each caller ID's cap), start them spaced by the
             server-wide calls-per-second cap, each as a task: CallPlacer.place
           campaigns with nothing pending or in a call → completed
      what attempts report (their calls, how they ended) is written at the start of the next tick, all of it in
      one transaction (storage.dialer.note_calls, record_results): a few statements per tick, not per call

All state is in the database, so a restarted process (or another one on the same PostgreSQL) carries on where
this one stopped. Only the pacing and the set of this process's live attempts are in memory.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from control_api.dialer.clock import Clock, SystemClock
from control_api.dialer.pacer import CallPacer, SendGate, Ticket
from control_api.dialer.placer import Attempt, AttemptResult, CallPlacer
from control_api.storage import Database
from control_api.storage import dialer as store
from media.end_reason import EndReason
from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)
MIN_TICK_GAP = 0.25  # seconds between ticks at least, however often calls end
FLUSH_TRIES = 3  # writes of one attempt's report before it is given up (then recovered as worker_lost)
ACTIVE_CHECK_SECONDS = 0.1  # how stale a paced attempt's "is the campaign still active" may be


def dialer_name(configured: str | None, data_dir: Path) -> str:
    """This process's name on its claims (`TALKWIRE_DIALER_ID`), by default host name and data dir: stable
    across restarts of the same server, different for servers side by side."""
    return configured or f"{socket.gethostname()}:{data_dir.resolve()}"[:128]


class Dialer:
    def __init__(self, db: Database, placer: CallPlacer, *, dialer_id: str, max_cps: float = 5.0,
                 tick_seconds: float = 1.0, lease_seconds: float = 60.0, clock: Clock | None = None) -> None:
        self.db = db
        self.placer = placer
        self.dialer_id = dialer_id
        self.tick_seconds = tick_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.clock: Clock = clock or SystemClock()
        self.pacer = CallPacer(max_cps)
        self.gate = SendGate(max_cps, self.clock.monotonic, self.clock.sleep)
        self._live: dict[str, tuple[Attempt, asyncio.Task[None]]] = {}  # token + row id -> attempt, its task
        self._wake = asyncio.Event()
        self._ticks = 0
        self._next_upkeep = float("-inf")
        self._next_refresh = float("-inf")
        self._plans: list[store.DialPlan] = []
        # Written to the database at the start of the next tick, all at once (storage.dialer.note_calls,
        # record_results): the calls of attempts just placed, and how ended attempts ended.
        self._noted: list[tuple[str, str, str]] = []
        self._ended: list[tuple[str, str, AttemptResult]] = []
        self._failures: dict[int, int] = {}  # id() of an item that failed to be written -> failures
        self._active: dict[str, tuple[float, bool]] = {}  # campaign id -> (checked at, active), for 100 ms
        self._loop_task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Record the attempts this process's name left in flight (and any whose lease ran out) as lost."""
        return await store.give_up_lost(self.db, self.clock.now(), self.dialer_id)

    async def run(self) -> None:
        await self.recover()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: try again next tick
                log.exception("dialer tick failed")
            await asyncio.sleep(MIN_TICK_GAP)  # calls ending together wake one tick, not one each
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds - MIN_TICK_GAP)
            except TimeoutError:
                pass

    def start(self, runner: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None) -> None:
        """Run the dialer in the background; `runner(self.run)` wraps it (e.g. only while holding a lock)."""
        main = runner(self.run) if runner is not None else self.run()
        self._loop_task = asyncio.ensure_future(main)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop dialing; wait up to `grace` seconds for live attempts to be recorded, then abandon them (their
        claims stay in the database and are recovered as `worker_lost` on the next start)."""
        await cancel_and_wait([self._loop_task])
        self._loop_task = None
        tasks = [task for _, task in self._live.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            await cancel_and_wait(late)
        try:
            await self._flush()
        except Exception:  # left to the next start's recovery (worker_lost)
            log.exception("dialer: recording the last attempts failed")

    @property
    def live_attempts(self) -> list[Attempt]:
        return [attempt for attempt, _ in self._live.values()]

    # ---- one tick ------------------------------------------------------------------------------------

    async def tick(self) -> int:
        """One pass over every campaign; how many attempts it started."""
        now = self.clock.now()
        await self._flush()
        await self._refresh()
        await self._upkeep()
        plans = self._plans
        if plans:
            self._ticks += 1
            shift = self._ticks % len(plans)  # campaigns take turns at the calls-per-second budget
            plans = plans[shift:] + plans[:shift]
        started = 0
        for plan in plans:
            live = sum(1 for attempt, _ in self._live.values() if attempt.campaign_id == plan.campaign_id)
            claimed: list[Attempt] = []
            if plan.window.is_open(now) and live < plan.max_concurrent:
                budget = self.pacer.available(self.clock.monotonic(), self.tick_seconds)
                if budget > 0:
                    claimed = await store.claim_attempts(self.db, plan, min(budget, plan.max_concurrent - live),
                                                         now, self.dialer_id, self.lease)
            mono = self.clock.monotonic()
            for attempt, at in zip(claimed, self.pacer.take(len(claimed), mono), strict=True):
                self._launch(attempt, max(0.0, at - mono))
            started += len(claimed)
            if not claimed and live == 0:
                await store.complete_finished(self.db, plan.campaign_id, now)
        return started

    async def _flush(self) -> None:
        """Write what attempts reported since the last tick: their calls, then how the ended ones ended. When the
        batch fails, each item is tried alone, so one bad item cannot hold the others back; an item that keeps
        failing is given up after a few ticks (its claim's lease then runs out: recovered as worker_lost)."""
        noted, self._noted = self._noted, []
        ended, self._ended = self._ended, []
        try:
            await store.note_calls(self.db, noted)
            await store.record_results(self.db, ended, self.clock.now())
            return
        except Exception:
            log.exception("dialer: writing %d call(s) and %d result(s) failed; trying each alone",
                          len(noted), len(ended))
        for note in noted:
            if not await self._alone(note, store.note_calls(self.db, [note])):
                self._noted.append(note)
        for result in ended:
            if not await self._alone(result, store.record_results(self.db, [result], self.clock.now())):
                self._ended.append(result)

    async def _alone(self, item: object, write: Awaitable[object]) -> bool:
        """Write one item; True when written or given up (after FLUSH_TRIES failures)."""
        try:
            await write
        except Exception:
            failures = self._failures[id(item)] = self._failures.get(id(item), 0) + 1
            if failures < FLUSH_TRIES:
                return False
            log.exception("dialer: giving up writing %s", item)
        self._failures.pop(id(item), None)
        return True

    async def _refresh(self) -> None:
        """Start scheduled campaigns that are due and re-read the active ones, once per tick period (ticks
        woken by ending calls reuse them: pause and caps are re-checked by every claim anyway)."""
        mono = self.clock.monotonic()
        if mono < self._next_refresh:
            return
        self._next_refresh = mono + self.tick_seconds - 1e-6
        await store.start_due_campaigns(self.db, self.clock.now())
        self._plans = await store.active_plans(self.db)

    async def _upkeep(self) -> None:
        """Renew this process's claims and give up others' expired ones, a few times per lease."""
        mono = self.clock.monotonic()
        if mono < self._next_upkeep:
            return
        self._next_upkeep = mono + self.lease.total_seconds() / 4
        now = self.clock.now()
        await store.renew_leases(self.db, [attempt.claim_token for attempt, _ in self._live.values()],
                                 now + self.lease)
        await store.give_up_lost(self.db, now)

    # ---- one attempt ---------------------------------------------------------------------------------

    def _launch(self, attempt: Attempt, delay: float) -> None:
        task = asyncio.create_task(self._attempt(attempt, delay), name=f"dial-{attempt.campaign_prospect_id}")
        self._live[attempt.claim_token + attempt.campaign_prospect_id] = (attempt, task)

    async def _attempt(self, attempt: Attempt, delay: float) -> None:
        key = attempt.claim_token + attempt.campaign_prospect_id
        try:
            if delay > 0 and not await self._still_due(attempt, delay):
                return
            ticket = await self.gate.enter()
            try:
                if ticket.waited and not await self._still_due(attempt, 0.0):  # paused while it waited its turn
                    return
                result = replace(await self._place(attempt, ticket), ended_at=self.clock.now())
            finally:
                ticket.leave()
            self._ended.append((attempt.campaign_prospect_id, attempt.claim_token, result))  # the next tick writes it
        except asyncio.CancelledError:
            raise
        except Exception:  # the claim stays; its lease runs out and it is recovered as worker_lost
            log.exception("dialer: attempt %s failed", attempt.campaign_prospect_id)
        finally:
            self._live.pop(key, None)
            self._wake.set()

    async def _still_due(self, attempt: Attempt, delay: float) -> bool:
        """Wait for the attempt's paced start; hand the claim back if meanwhile the campaign was paused, its window
        closed or the dialer is stopping (an attempt never dialled is not an attempt)."""
        try:
            await self.clock.sleep(delay)
            plan = next((p for p in self._plans if p.campaign_id == attempt.campaign_id), None)
            if (plan is not None and plan.window.is_open(self.clock.now())
                    and await self._is_active(attempt.campaign_id)):
                return True
        except asyncio.CancelledError:
            await asyncio.shield(self._release(attempt))
            raise
        await self._release(attempt)
        return False

    async def _is_active(self, campaign_id: str) -> bool:
        """Whether the campaign is still active (not paused), read at most every 100 ms: paced attempts starting
        close together share one read."""
        mono = self.clock.monotonic()
        checked = self._active.get(campaign_id)
        if checked is None or mono - checked[0] >= ACTIVE_CHECK_SECONDS:
            checked = self._active[campaign_id] = (mono, await store.campaign_is_active(self.db, campaign_id))
        return checked[1]

    async def _release(self, attempt: Attempt) -> None:
        await store.release_claim(self.db, attempt.campaign_prospect_id, attempt.claim_token, self.clock.now())

    async def _place(self, attempt: Attempt, ticket: Ticket) -> AttemptResult:
        """Place the call; `ticket` (the send gate's) is left as soon as its INVITE is out."""
        async def created(call_id: str) -> None:
            ticket.leave()  # the INVITE is out: the next call may go after the interval
            self._noted.append((attempt.campaign_prospect_id, attempt.claim_token, call_id))  # the next tick writes it

        try:
            return await self.placer.place(attempt, created)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialer: placing a call to %s failed", attempt.phone_to)
            return AttemptResult(answered=False, end_reason=EndReason.ERROR)
        finally:
            ticket.leave()
