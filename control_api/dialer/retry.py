"""What happens to a campaign candidate after an attempt: done, retried later, or given up. Pure.

Outcomes: `answered` (the callee picked up: done, whatever the conversation said), `busy`, `no_answer`
(rang past the campaign's `call_timeout_seconds`, or the callee's side timed out) and `failed` (network error,
rejected, authentication failure, 5xx, or the process running the call died: `worker_lost`). Each unanswered
outcome has its own trio on the campaign: `retry_<outcome>_calls`, `max_retries_<outcome>` (retries after the
first attempt, counted per outcome) and `retry_delay_<outcome>_seconds` (from the end of the attempt). A retry
is only ever placed inside the calling window: it is due at the first open instant at or after the delay.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from control_api.dialer.states import ProspectStatus
from control_api.dialer.window import CallingWindow
from media.end_reason import EndReason


class Outcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


def outcome_of(reason: str | EndReason | None, answered: bool) -> Outcome:
    """The dialer's outcome for a call that ended for `reason` (answered: the callee picked up)."""
    if answered:
        return Outcome.ANSWERED
    if reason == EndReason.BUSY:
        return Outcome.BUSY
    if reason == EndReason.NO_ANSWER:
        return Outcome.NO_ANSWER
    return Outcome.FAILED


@dataclass(frozen=True, slots=True)
class RetryRule:
    enabled: bool
    max_retries: int
    delay_seconds: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    busy: RetryRule
    no_answer: RetryRule
    failed: RetryRule

    def rule(self, outcome: Outcome) -> RetryRule | None:
        return {Outcome.BUSY: self.busy, Outcome.NO_ANSWER: self.no_answer, Outcome.FAILED: self.failed}.get(outcome)


@dataclass(frozen=True, slots=True)
class Decision:
    status: ProspectStatus  # pending (a retry is due at next_attempt_at), completed or failed
    next_attempt_at: datetime | None
    retry_counted: Outcome | None  # the outcome whose retry counter goes up by one


def decide(policy: RetryPolicy, outcome: Outcome, retries_used: int, ended_at: datetime,
           window: CallingWindow) -> Decision:
    """After an attempt with `outcome`, where `retries_used` retries were already spent on that outcome."""
    if outcome is Outcome.ANSWERED:
        return Decision(ProspectStatus.COMPLETED, None, None)
    rule = policy.rule(outcome)
    if rule is None or not rule.enabled or retries_used >= rule.max_retries:
        return Decision(ProspectStatus.FAILED, None, None)
    due = window.next_opening(ended_at + timedelta(seconds=rule.delay_seconds))
    if due is None:  # the window never opens: nothing more can be dialled
        return Decision(ProspectStatus.FAILED, None, None)
    return Decision(ProspectStatus.PENDING, due, outcome)
