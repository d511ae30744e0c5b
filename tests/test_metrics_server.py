"""GET /metrics on a live server (FAKE providers): a real web call moves every metric the issue names.

The agent is created without provider choices, so it runs on the server's defaults (FAKE here)."""
from __future__ import annotations

import asyncio

import httpx
import numpy as np
import soxr
from prometheus_client.parser import text_string_to_metric_families

from agent_runtime.providers.fake import FakeTTS
from loadtest.server import create_agent
from control_api.metrics import FrameLagMeter
from conftest import LiveServer
from webrtc_caller import WebRtcCaller


async def scrape(server: LiveServer) -> dict[tuple[str, tuple], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_a_web_call(live_server: LiveServer) -> None:
    before = await scrape(live_server)
    assert value(before, "talkwire_active_calls", leg="webrtc") == 0
    assert value(before, "talkwire_provider_errors_total", stage="stt") == 0
    speech = FakeTTS().render("hello, can you hear me today")  # voiced enough for the VAD
    caller = WebRtcCaller()
    try:
        agent_id = await create_agent(live_server.base_url, live_server.secret_key)
        await caller.call(live_server.base_url, agent_id, live_server.publishable_key)
        await caller.wait_for_audio(seconds=0.5, timeout=30)  # the welcome message
        await caller.wait_for_message(lambda m: m.get("type") == "agent_state" and m["state"] == "listening",
                                      timeout=30)
        caller.mic.play(np.concatenate([soxr.resample(speech, 16000, 48000).astype(np.int16),
                                        np.zeros(48000, np.int16)]))
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("role") == "agent"
                                      and m.get("is_final") and "You said" in m.get("text", ""), timeout=30)
        during = await scrape(live_server)
        assert value(during, "talkwire_active_calls", leg="webrtc") == 1
        for garbage in ("not json", "[" * 100 + "]" * 100):  # refused by the leg, counted at the call's end
            caller.send_raw(garbage)
        await caller.wait_for_message(lambda m: m.get("code") == "MESSAGE_TOO_DEEP", timeout=10)
    finally:
        await caller.close()
    for _ in range(250):
        after = await scrape(live_server)
        if value(after, "talkwire_active_calls", leg="webrtc") == 0:
            break
        await asyncio.sleep(0.04)
    assert value(after, "talkwire_active_calls", leg="webrtc") == 0
    finished = {labels: v for (name, labels), v in after.items() if name == "talkwire_calls_total"}
    assert sum(finished.values()) == 1
    (labels,) = finished
    assert dict(labels)["leg"] == "webrtc" and dict(labels)["status"] == "completed"

    # Frames were sent on a 20 ms schedule: many observed, most of them (on a busy CI box: half) on time.
    frames = value(after, "talkwire_outbound_frame_lag_seconds_count", leg="webrtc")
    assert frames > 50
    assert value(after, "talkwire_outbound_frame_lag_seconds_bucket", leg="webrtc", le="0.04") >= frames / 2
    for lag in ("talkwire_clock_tick_lag_seconds_count", "talkwire_event_loop_lag_seconds_count"):
        assert value(after, lag) > value(before, lag), lag
    # One agent response at least, with every stage timed and the response under the 10 s top bucket.
    for stage in ("stt", "llm_first_token", "tts_first_audio", "response"):
        assert value(after, "talkwire_pipeline_stage_seconds_count", stage=stage) >= 1, stage
    assert value(after, "talkwire_pipeline_stage_seconds_bucket", stage="response", le="10.0") >= 1
    assert value(after, "talkwire_provider_errors_total", stage="llm") == 0
    assert value(after, "talkwire_refusals_total", reason="bad_message") == 2
    assert value(after, "process_cpu_seconds_total") > 0
    assert value(after, "process_resident_memory_bytes") > 10e6


class FakeLoop:
    """A loop double whose time() the test sets."""

    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


def test_frame_lag_meter_measures_lateness_against_the_leg_grid() -> None:
    loop, seen = FakeLoop(), []
    meter = FrameLagMeter(loop, seen.append)  # type: ignore[arg-type]
    for t in (0.0, 0.02, 0.04, 0.075, 0.08, 0.1):  # frame 3 is 15 ms late, frame 4 catches up
        loop.now = 100.0 + t
        meter.frame()
    assert np.allclose(seen, [0, 0, 0, 0.015, 0, 0])
    loop.now = 100.0 + 0.5  # a 380 ms stall: reported once, then a new grid
    meter.frame()
    loop.now += 0.02
    meter.frame()
    assert np.isclose(seen[-2], 0.38) and seen[-1] == 0
