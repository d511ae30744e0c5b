"""Server metrics for `GET /metrics` (Prometheus text format), one registry per app.

Each `Runtime` owns a `Metrics` with its own `CollectorRegistry` (not prometheus-client's global one), so
several servers in one process (tests) never clash. What is measured, and where:

- `talkwire_active_calls{leg}`                 calls running now, by leg kind (webrtc, sip)
- `talkwire_calls_total{leg,status,reason}`    finished calls: status completed|failed and the end reason
- `talkwire_outbound_frame_lag_seconds{leg}`   per frame handed to the transport: how late it is against
                                               the leg's own 20 ms schedule (see FrameLagMeter)
- `talkwire_clock_tick_lag_seconds`            the shared MediaClock's wake-up lag per 20 ms tick
- `talkwire_event_loop_lag_seconds`            how late a 50 ms sleep on the event loop wakes up
- `talkwire_pipeline_stage_seconds{stage}`     per agent response: stt (VAD end → STT final),
                                               llm_first_token, tts_first_audio, response (end of the
                                               caller's speech → first agent audio handed to the leg)
- `talkwire_provider_errors_total{stage,provider}` STT/LLM/TTS failures the conversation reported, by the vendor
                                               that failed (DEEPGRAM, AZURE, ...; a fallback that served the turn
                                               does not hide the primary's failure)
- `talkwire_refusals_total{reason}`            requests and messages refused to protect the server, by reason
                                               (REFUSAL_REASONS); each is also a 4xx/503 or a data-channel error
- `process_*`                                  CPU seconds and resident memory of the server process

The lag histograms have bucket bounds at 20 ms and 40 ms exactly, so "p99 over 20 ms" and "any frame
over 40 ms late" (the load tester's ramp thresholds) are read from bucket counts without interpolation.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from media.frame_lag import LAG_BUCKETS, FrameLagMeter, LoopLagProbe

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
LOOP_PROBE_INTERVAL = 0.05
STAGES = {"stt": "stt_ms", "llm_first_token": "llm_first_token_ms", "tts_first_audio": "tts_first_audio_ms",
          "response": "response_ms"}
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Why something was refused: rate_limited (a token bucket was empty), over_quota (a size or count budget:
# body, upload, timeline, live calls of a tenant), bad_message (nesting, non-finite numbers, invalid data-channel
# messages), guard_refusal (a webhook address that is not global), over_capacity (this process is full: 503).
REFUSAL_REASONS = ("rate_limited", "over_quota", "bad_message", "guard_refusal", "over_capacity")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.active_calls = Gauge("talkwire_active_calls", "Calls running now, by leg kind", ["leg"], registry=r)
        self.calls = Counter("talkwire_calls", "Finished calls by leg, status and end reason",
                             ["leg", "status", "reason"], registry=r)
        self.frame_lag = Histogram("talkwire_outbound_frame_lag_seconds",
                                   "Lateness of each outbound frame against its leg's 20 ms schedule",
                                   ["leg"], buckets=LAG_BUCKETS, registry=r)
        self.tick_lag = Histogram("talkwire_clock_tick_lag_seconds", "Wake-up lag of the shared 20 ms clock",
                                  buckets=LAG_BUCKETS, registry=r)
        self.loop_lag = Histogram("talkwire_event_loop_lag_seconds",
                                  f"How late a {int(LOOP_PROBE_INTERVAL * 1000)} ms sleep on the event loop wakes",
                                  buckets=LAG_BUCKETS, registry=r)
        self.stage_latency = Histogram("talkwire_pipeline_stage_seconds",
                                       "Pipeline stage latency per agent response", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=r)
        self.provider_errors = Counter("talkwire_provider_errors", "Provider failures by pipeline stage and vendor",
                                       ["stage", "provider"], registry=r)
        self.refusals = Counter("talkwire_refusals", "Requests and messages refused, by reason", ["reason"],
                                registry=r)
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)
        self.sip_registrations = Gauge("talkwire_sip_registrations",
                                       "SIP trunk registrations of this process, by state",
                                       ["state"], registry=r)
        self._probe = LoopLagProbe(self.loop_lag.observe, LOOP_PROBE_INTERVAL)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ---- calls ------------------------------------------------------------------------------------

    def call_started(self, leg: str) -> None:
        self.active_calls.labels(leg).inc()

    def call_finished(self, leg: str, status: str, reason: str) -> None:
        self.active_calls.labels(leg).dec()
        self.calls.labels(leg, status, reason).inc()

    def observe_timing(self, timing: object) -> None:
        """A TurnTiming update (milliseconds, None where the stage did not run)."""
        for stage, attr in STAGES.items():
            value = getattr(timing, attr, None)
            if value is not None:
                self.stage_latency.labels(stage).observe(value / 1000)

    def provider_error(self, stage: str, provider: str | None) -> None:
        self.provider_errors.labels(stage, provider or "unknown").inc()

    def refused(self, reason: str, count: int = 1) -> None:
        """`count` refusals for `reason`, one of REFUSAL_REASONS (a leg's tallies are added at call end)."""
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        if count > 0:
            self.refusals.labels(reason).inc(count)

    def frame_lag_tap(self, leg: str, loop: asyncio.AbstractEventLoop,
                      inner: Callable[[np.ndarray | None], None] | None) -> Callable[[np.ndarray | None], None]:
        """An OutboundAudio tap that measures each frame's lag, then calls `inner` (the recorder's tap)."""
        meter = FrameLagMeter(loop, self.frame_lag.labels(leg).observe)

        def tap(samples: np.ndarray | None) -> None:
            meter.frame()
            if inner is not None:
                inner(samples)

        return tap

    # ---- event loop -------------------------------------------------------------------------------

    def start_loop_probe(self) -> None:
        self._probe.start("metrics-loop-probe")

    async def stop_loop_probe(self) -> None:
        await self._probe.stop()
