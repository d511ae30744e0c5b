"""Whether this process takes one more call: the one rule for `POST /calls/create`, web offers and inbound SIP.

A call is refused (503 with `Retry-After` over HTTP, `503 Service Unavailable` to an INVITE, which Kamailio
answers by trying the next member) when the process is draining, when it already runs `TALKWIRE_MAX_CALLS`
live calls, or when it is a member that cannot reach Redis (nobody could place or find its calls). Refusing
one call cleanly is better than degrading every live one.
"""
from __future__ import annotations

from dataclasses import dataclass

OVER_CAPACITY = "OVER_CAPACITY"  # the error code of every refusal here
RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str
    retry_after: int = RETRY_AFTER_SECONDS


def refusal(live_calls: int, *, max_calls: int, draining: bool = False, cluster_healthy: bool = True) -> Refusal | None:
    """Why one more call cannot start here, or None when it can. `max_calls` 0: no limit."""
    if draining:
        return Refusal(OVER_CAPACITY, "This server is shutting down and takes no new calls.")
    if not cluster_healthy:
        return Refusal(OVER_CAPACITY, "This server cannot reach the deployment's Redis; it takes no new calls.")
    if max_calls and live_calls >= max_calls:
        return Refusal(OVER_CAPACITY, f"This server is at its capacity of {max_calls} live calls.")
    return None
