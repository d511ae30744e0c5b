"""The echo baseline's `GET /metrics`: the part of the server's metrics the load tester reads, under the same
names and with the same lag buckets (`media.frame_lag`), so both servers are judged by the same thresholds.

- `talkwire_active_calls{leg}`, `talkwire_calls_total{leg,status,reason}`
- `talkwire_outbound_frame_lag_seconds{leg}`, `talkwire_clock_tick_lag_seconds`, `talkwire_event_loop_lag_seconds`
- `process_*`: CPU seconds and resident memory
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from media.frame_lag import LAG_BUCKETS, LoopLagProbe

CONTENT_TYPE = CONTENT_TYPE_LATEST
LOOP_PROBE_INTERVAL = 0.05  # as the server's: how late a 50 ms sleep wakes up


class EchoMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        self.active_calls = Gauge("talkwire_active_calls", "Calls running now, by leg kind", ["leg"], registry=r)
        self.calls = Counter("talkwire_calls", "Finished calls by leg, status and end reason",
                             ["leg", "status", "reason"], registry=r)
        self.frame_lag = Histogram("talkwire_outbound_frame_lag_seconds",
                                   "Lateness of each outbound frame against its leg's 20 ms schedule",
                                   ["leg"], buckets=LAG_BUCKETS, registry=r)
        self.tick_lag = Histogram("talkwire_clock_tick_lag_seconds", "Wake-up lag of the shared 20 ms clock",
                                  buckets=LAG_BUCKETS, registry=r)
        self.loop_lag = Histogram("talkwire_event_loop_lag_seconds", "How late a 50 ms sleep on the event loop wakes",
                                  buckets=LAG_BUCKETS, registry=r)
        self._probe = LoopLagProbe(self.loop_lag.observe, LOOP_PROBE_INTERVAL)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def call_started(self, leg: str) -> None:
        self.active_calls.labels(leg).inc()

    def call_finished(self, leg: str, status: str, reason: str) -> None:
        self.active_calls.labels(leg).dec()
        self.calls.labels(leg, status, reason).inc()

    def start_loop_probe(self) -> None:
        self._probe.start("echo-loop-probe")

    async def stop_loop_probe(self) -> None:
        await self._probe.stop()
