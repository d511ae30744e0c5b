"""The states of a campaign and of each of its candidates, and the moves between them. Pure.

Campaign:

    draft ──start──► active ──pause──► paused ──resume──► active ──(nothing left to dial)──► completed
    draft | paused | scheduled ──schedule-start──► scheduled ──start, or scheduled_start_time reached──► active

Candidate (`campaign_prospects.status`):

    pending ──claimed by the dialer──► in_progress ──answered──► completed
                                                   ──busy / no answer / failed, a retry left──► pending (due later)
                                                   ──no retry left, or not retryable──► failed

A candidate `pending` with `next_attempt_at` in the future is waiting for a retry. A campaign is completed
when none of its candidates is pending or in progress.

Lead (`prospects.status`) as the dialer leaves it: `New` (not yet called), `Contacted` (answered),
`Attempted` (not reached, a retry is due), `Not reachable` (not reached, no retry left). The dialer changes a
lead's status only while it holds one of these values, so a status written by post-call analysis
(`store_to_prospect` on the `status` column) or by hand is never overwritten.
"""
from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class ProspectStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class LeadStatus(StrEnum):
    NEW = "New"
    CONTACTED = "Contacted"
    ATTEMPTED = "Attempted"
    NOT_REACHABLE = "Not reachable"


DIALER_LEAD_STATUSES = frozenset(status.value for status in LeadStatus)

# action -> (states it may start from, state it leads to)
ACTIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "start": (frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}), CampaignStatus.ACTIVE),
    "pause": (frozenset({CampaignStatus.ACTIVE}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.ACTIVE),
    "schedule-start": (frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED}),
                       CampaignStatus.SCHEDULED),
}


class TransitionError(ValueError):
    """The action is not allowed from the campaign's current state."""


def next_campaign_status(current: str, action: str) -> CampaignStatus:
    """The state `action` moves a campaign in state `current` to; TransitionError when it may not."""
    allowed, target = ACTIONS[action]
    if current not in allowed:
        raise TransitionError(f"Cannot {action.replace('-', ' ')} a campaign that is {current}")
    return target


def lead_status_after(current: str, prospect: ProspectStatus) -> str:
    """The lead's status after an attempt left its candidate in `prospect` state (unchanged if not the dialer's)."""
    if current not in DIALER_LEAD_STATUSES:
        return current
    if prospect is ProspectStatus.COMPLETED:
        return LeadStatus.CONTACTED.value
    if prospect is ProspectStatus.PENDING:
        return LeadStatus.ATTEMPTED.value
    return LeadStatus.NOT_REACHABLE.value
