"""Token buckets: a burst, then the refill rate, each key on its own, and Retry-After that tells the truth."""
from __future__ import annotations

from control_api.limits import MemoryLimiter, Rule, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_rate_per_key() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    rule = Rule("calls_per_key", per_minute=60, burst=3)
    assert [limiter.take_now(rule, "a") for _ in range(3)] == [None, None, None]
    wait = limiter.take_now(rule, "a")
    assert wait is not None and abs(wait - 1.0) < 1e-9
    assert limiter.take_now(rule, "b") is None  # another key has its own bucket
    clock.now += 0.5
    assert abs(limiter.take_now(rule, "a") - 0.5) < 1e-9  # a refused request does not cost a token
    clock.now += 0.5
    assert limiter.take_now(rule, "a") is None
    clock.now += 3600
    assert [limiter.take_now(rule, "a") for _ in range(4)][:3] == [None, None, None]  # refills to burst only


def test_a_disabled_rule_allows_everything() -> None:
    limiter = MemoryLimiter(Clock())
    rule = Rule("off", per_minute=0, burst=0)
    assert all(limiter.take_now(rule, "k") is None for _ in range(1000))


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1" and retry_after_header(1.2) == "2" and retry_after_header(3) == "3"
