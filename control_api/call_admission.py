"""Whether this process takes a new call: rate limits, the tenant's live-call quota, the process's capacity.

    POST /calls/create ──► admit_create(...)   publishable key: per-key and per-IP buckets; every key: quota, capacity
    POST worker_url    ──► admit_offer(...)    per-IP bucket
                       ──► check_room(...)     quota, capacity: right before the call's place is reserved

A refusal is an `ApiError` with `Retry-After`, counted in /metrics (`talkwire_refusals_total{reason}`):
- 429 `RATE_LIMITED`: a token bucket is empty (TALKWIRE_CALLS_PER_MINUTE_PER_KEY / _PER_IP,
  TALKWIRE_OFFERS_PER_MINUTE_PER_IP, each with its burst). The publishable key ships in every web page, so its
  requests are limited per key and per client address; secret-key requests (the operator's own servers and
  dialers) are not rate-limited, only held to the quota and the capacity.
- 429 `OVER_QUOTA`: the tenant has TALKWIRE_MAX_CALLS_PER_CLIENT calls live on this process.
- 503 `OVER_CAPACITY`: this process has TALKWIRE_MAX_CALLS calls live or being connected.
Limits are this process's (`MemoryLimiter`); a deployment of many members passes a deployment-wide limiter.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request

from control_api.errors import ApiError
from control_api.limits import Limiter, MemoryLimiter, Rule, retry_after_header
from control_api.live_calls import LiveCalls
from control_api.metrics import Metrics
from control_api.settings import Settings

log = logging.getLogger(__name__)

CAPACITY_RETRY_AFTER = 5.0  # seconds a caller refused for capacity or quota is asked to wait
LOG_EVERY = 60.0  # one log line per source and reason at most this often (a flood is not a line per request)
LOG_SOURCES = 10_000  # sources remembered for that; the least recent go first


def client_address(request: Request) -> str:
    """The caller's address, as the server saw it (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client is not None else "unknown"


@dataclass(frozen=True, slots=True)
class CallRules:
    per_key: Rule
    per_ip: Rule
    offers_per_ip: Rule

    @classmethod
    def of(cls, settings: Settings) -> CallRules:
        return cls(
            Rule("calls_per_key", settings.calls_per_minute_per_key, settings.calls_burst_per_key),
            Rule("calls_per_ip", settings.calls_per_minute_per_ip, settings.calls_burst_per_ip),
            Rule("offers_per_ip", settings.offers_per_minute_per_ip, settings.offers_burst_per_ip),
        )


class CallAdmission:
    def __init__(self, settings: Settings, calls: LiveCalls, metrics: Metrics,
                 limiter: Limiter | None = None) -> None:
        self.settings = settings
        self.calls = calls
        self.metrics = metrics
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.rules = CallRules.of(settings)
        self._logged: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def admit_create(self, *, client_id: str, key_id: str, publishable: bool, client_ip: str) -> None:
        """Raise the refusal for a new call of `client_id` asked with key `key_id` from `client_ip`, if any."""
        if publishable:
            await self._take(self.rules.per_key, key_id, f"key {key_id}")
            await self._take(self.rules.per_ip, client_ip, client_ip)
        self.check_room(client_id, reserving=False)

    async def admit_offer(self, *, client_ip: str) -> None:
        """Raise the refusal for an offer to a worker URL from `client_ip`, if any."""
        await self._take(self.rules.offers_per_ip, client_ip, client_ip)

    def check_room(self, client_id: str, *, reserving: bool) -> None:
        """Raise the refusal when `client_id` is at its quota or this process at its capacity. `reserving`: a
        place is about to be reserved (synchronously after this), so reservations count as taken places."""
        quota = self.settings.max_calls_per_client
        if quota and self.calls.count_of(client_id) >= quota:
            self._refuse(429, "OVER_QUOTA", "over_quota", CAPACITY_RETRY_AFTER, f"client {client_id}",
                         f"Your account has {quota} calls live, its limit (TALKWIRE_MAX_CALLS_PER_CLIENT); "
                         "try again when one has ended")
        cap = self.settings.max_calls
        taken = self.calls.occupied if reserving else len(self.calls)
        if cap and taken >= cap:
            self._refuse(503, "OVER_CAPACITY", "over_capacity", CAPACITY_RETRY_AFTER, "this process",
                         "This server is at its call capacity; try again shortly")

    async def _take(self, rule: Rule, key: str, source: str) -> None:
        wait = await self.limiter.take(rule, key)
        if wait is not None:
            self._refuse(429, "RATE_LIMITED", "rate_limited", wait, f"{source} ({rule.name})",
                         f"Too many calls ({rule.name.replace('_', ' ')}); retry in a moment")

    def _refuse(self, status: int, code: str, reason: str, retry_after: float, source: str, message: str) -> None:
        """Count the refusal (`reason`: REFUSAL_REASONS), log it once a minute per source, raise its error."""
        self.metrics.refused(reason)
        now = time.monotonic()
        slot = (code, source)
        if now - self._logged.get(slot, -LOG_EVERY) >= LOG_EVERY:
            self._logged[slot] = now
            self._logged.move_to_end(slot)
            while len(self._logged) > LOG_SOURCES:
                self._logged.popitem(last=False)
            log.warning("refusing new calls from %s: %s (logged once a minute per source)", source, code)
        raise ApiError(status, code, message, {"Retry-After": retry_after_header(retry_after)})
