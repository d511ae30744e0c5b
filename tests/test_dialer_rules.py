"""The dialer's pure rules: the calling window (time zones, DST, midnight), retries by outcome, states, pacing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from control_api.dialer.pacer import CallPacer
from control_api.dialer.retry import Outcome, RetryPolicy, RetryRule, decide, outcome_of
from control_api.dialer.states import (
    ProspectStatus,
    TransitionError,
    lead_status_after,
    next_campaign_status,
)
from control_api.dialer.window import CallingWindow
from media.end_reason import EndReason

NY = ZoneInfo("America/New_York")
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_window_open_inside_hours_on_listed_days_only() -> None:
    window = CallingWindow.of("America/New_York", "09:00:00", "18:00:00", WEEKDAYS)
    assert not window.is_open(ny(2026, 3, 2, 8, 59, 59))  # a Monday
    assert window.is_open(ny(2026, 3, 2, 9, 0))
    assert window.is_open(ny(2026, 3, 2, 17, 59, 59))
    assert not window.is_open(ny(2026, 3, 2, 18, 0))
    assert not window.is_open(ny(2026, 3, 7, 12, 0))  # Saturday
    assert window.next_opening(ny(2026, 3, 6, 18, 30)) == ny(2026, 3, 9, 9, 0).astimezone(timezone.utc)  # Fri→Mon
    inside = ny(2026, 3, 2, 10, 0)
    assert window.next_opening(inside) == inside.astimezone(timezone.utc)


def test_window_follows_daylight_saving_in_utc() -> None:
    """09:00 New York is 14:00 UTC before the 8 March 2026 spring-forward and 13:00 UTC after it."""
    window = CallingWindow.of("America/New_York", "09:00", "18:00", ["Sunday", "Monday", "Friday", "Saturday"])
    before = window.next_opening(datetime(2026, 3, 6, 23, 0, tzinfo=timezone.utc))  # Friday evening
    assert before == datetime(2026, 3, 7, 14, 0, tzinfo=timezone.utc)  # Saturday, EST
    after = window.next_opening(datetime(2026, 3, 7, 23, 30, tzinfo=timezone.utc))
    assert after == datetime(2026, 3, 8, 13, 0, tzinfo=timezone.utc)  # Sunday, EDT
    assert window.is_open(datetime(2026, 3, 8, 13, 0, tzinfo=timezone.utc))
    assert not window.is_open(datetime(2026, 3, 8, 12, 59, tzinfo=timezone.utc))
    # and back in November
    autumn = window.next_opening(datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc))  # Sunday after fall-back
    assert autumn == datetime(2026, 11, 1, 14, 0, tzinfo=timezone.utc)


def test_a_window_in_the_spring_forward_gap_opens_after_it() -> None:
    window = CallingWindow.of("America/New_York", "02:30", "04:00", ["Sunday"])
    opening = window.next_opening(datetime(2026, 3, 8, 5, 0, tzinfo=timezone.utc))  # 00:00 EST
    assert opening == ny(2026, 3, 8, 3, 30).astimezone(timezone.utc)
    assert window.is_open(opening)


def test_window_crossing_midnight_belongs_to_the_day_it_opens() -> None:
    window = CallingWindow.of("Asia/Kolkata", "20:00:00", "02:00:00", ["Friday"])
    ist = ZoneInfo("Asia/Kolkata")
    assert window.is_open(datetime(2026, 3, 6, 21, 0, tzinfo=ist))  # Friday night
    assert window.is_open(datetime(2026, 3, 7, 1, 59, tzinfo=ist))  # Saturday small hours: still Friday's window
    assert not window.is_open(datetime(2026, 3, 7, 2, 0, tzinfo=ist))
    assert not window.is_open(datetime(2026, 3, 7, 21, 0, tzinfo=ist))  # Saturday is not listed
    assert not window.is_open(datetime(2026, 3, 6, 1, 0, tzinfo=ist))  # Thursday's window does not exist
    assert window.next_opening(datetime(2026, 3, 7, 3, 0, tzinfo=ist)) == datetime(
        2026, 3, 13, 20, 0, tzinfo=ist).astimezone(timezone.utc)


def test_equal_start_and_end_is_open_all_day_and_no_days_never_opens() -> None:
    window = CallingWindow.of("UTC", "00:00:00", "00:00:00", ["Monday", "Tuesday"])
    assert window.is_open(datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc))
    assert window.is_open(datetime(2026, 3, 3, 23, 59, tzinfo=timezone.utc))
    assert not window.is_open(datetime(2026, 3, 4, 0, 0, tzinfo=timezone.utc))
    never = CallingWindow.of("UTC", "09:00", "17:00", [])
    assert never.next_opening(datetime(2026, 3, 2, tzinfo=timezone.utc)) is None


POLICY = RetryPolicy(busy=RetryRule(True, 2, 30), no_answer=RetryRule(True, 1, 600), failed=RetryRule(False, 5, 10))
ALWAYS = CallingWindow.of("UTC", "00:00", "00:00", WEEKDAYS + ["Saturday", "Sunday"])
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def test_retries_by_outcome_count_retries_after_the_first_attempt() -> None:
    assert decide(POLICY, Outcome.ANSWERED, 0, T0, ALWAYS).status is ProspectStatus.COMPLETED
    first = decide(POLICY, Outcome.BUSY, 0, T0, ALWAYS)
    assert (first.status, first.next_attempt_at, first.retry_counted) == (
        ProspectStatus.PENDING, T0 + timedelta(seconds=30), Outcome.BUSY)
    assert decide(POLICY, Outcome.BUSY, 1, T0, ALWAYS).status is ProspectStatus.PENDING
    assert decide(POLICY, Outcome.BUSY, 2, T0, ALWAYS).status is ProspectStatus.FAILED
    assert decide(POLICY, Outcome.NO_ANSWER, 0, T0, ALWAYS).next_attempt_at == T0 + timedelta(seconds=600)
    assert decide(POLICY, Outcome.NO_ANSWER, 1, T0, ALWAYS).status is ProspectStatus.FAILED
    assert decide(POLICY, Outcome.FAILED, 0, T0, ALWAYS).status is ProspectStatus.FAILED  # retries disabled


def test_a_retry_due_outside_the_window_waits_for_the_next_opening() -> None:
    office = CallingWindow.of("UTC", "09:00", "10:01", WEEKDAYS)
    decision = decide(POLICY, Outcome.NO_ANSWER, 0, T0, office)  # due 10:10, after closing
    assert decision.next_attempt_at == datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("reason", "answered", "outcome"), [
    (EndReason.REMOTE_HANGUP, True, Outcome.ANSWERED),
    (EndReason.BUSY, False, Outcome.BUSY),
    (EndReason.NO_ANSWER, False, Outcome.NO_ANSWER),
    (EndReason.REJECTED, False, Outcome.FAILED),
    (EndReason.AUTH_FAILED, False, Outcome.FAILED),
    (EndReason.WORKER_LOST, False, Outcome.FAILED),
    (None, False, Outcome.FAILED),
])
def test_outcome_of_end_reasons(reason: EndReason | None, answered: bool, outcome: Outcome) -> None:
    assert outcome_of(reason, answered) is outcome


def test_campaign_moves_and_lead_statuses() -> None:
    assert next_campaign_status("draft", "start").value == "active"
    assert next_campaign_status("paused", "schedule-start").value == "scheduled"
    with pytest.raises(TransitionError):
        next_campaign_status("completed", "resume")
    assert lead_status_after("New", ProspectStatus.PENDING) == "Attempted"
    assert lead_status_after("Attempted", ProspectStatus.FAILED) == "Not reachable"
    assert lead_status_after("Attempted", ProspectStatus.COMPLETED) == "Contacted"
    assert lead_status_after("Interested", ProspectStatus.FAILED) == "Interested"  # not the dialer's to change


def test_pacer_spaces_starts_by_the_cap() -> None:
    pacer = CallPacer(5.0)
    assert pacer.available(100.0, 1.0) == 5
    times = pacer.take(5, 100.0)
    assert times == pytest.approx([100.0, 100.2, 100.4, 100.6, 100.8])
    assert pacer.available(100.5, 1.0) == 3  # 101.0, 101.2, 101.4
    assert pacer.available(100.0, 1.0) == 0


async def test_sip_placer_dials_with_the_attempts_details_and_waits_for_the_end() -> None:
    from control_api.dialer.placer import Attempt
    from control_api.dialer.sip_placer import CallEnd, SipPlacer

    class Calls:
        def __init__(self) -> None:
            self.dialled: list[dict[str, object]] = []

        async def dial(self, **kwargs: object) -> str:
            self.dialled.append(kwargs)
            if kwargs["to_number"] == "+15550000009":
                raise RuntimeError("no trunk")
            return "call-1"

        async def wait_ended(self, call_id: str) -> CallEnd:
            return CallEnd(False, EndReason.BUSY)

    noted: list[str] = []

    async def created(call_id: str) -> None:
        noted.append(call_id)

    calls = Calls()
    attempt = Attempt("cp", "tok", "client", "camp", "agent", "pros", "+15550000001", "+15550000002", None, 25.0, 1)
    result = await SipPlacer(calls).place(attempt, created)  # type: ignore[arg-type]
    assert (result.answered, result.end_reason, result.call_id, noted) == (False, EndReason.BUSY, "call-1", ["call-1"])
    assert calls.dialled[0] == {"client_id": "client", "agent_id": "agent", "to_number": "+15550000001",
                                "from_number": "+15550000002", "ring_timeout": 25.0, "prospect_id": "pros",
                                "campaign_id": "camp"}
    broken = Attempt("cp", "tok", "client", "camp", "agent", "pros", "+15550000009", None, None, 25.0, 1)
    failed = await SipPlacer(calls).place(broken, created)  # type: ignore[arg-type]
    assert (failed.answered, failed.end_reason) == (False, EndReason.NETWORK_ERROR)


def test_dialer_name_is_stable_per_host_and_data_dir(tmp_path: object) -> None:
    from pathlib import Path

    from control_api.dialer.loop import dialer_name

    here = Path(str(tmp_path))
    assert dialer_name(None, here) == dialer_name(None, here) != dialer_name(None, here / "other")
    assert dialer_name("worker-2", here) == "worker-2"
