"""Benchmark: what the conversation pipeline adds to response time, and how fast barge-in silences the agent.

Run by hand (not in CI):  .venv/bin/python scripts/bench_pipeline.py [--quick] [--turns N] [--json PATH]

One call: a Conversation with the instant FAKE providers (STT scripted, LLM echo, TTS tone) on an
in-memory leg (tests/legs.py MemoryLeg) whose sender drains the outbound queue on the real shared 20 ms
MediaClock. The caller's speech is espeak-ng made (cached) and fed in real time, one 20 ms frame per
tick, at the leg rate (48 kHz like WebRTC, or --rate 8000 like SIP).

Figures, each with a baseline measured in the same run so they read as ratios:

- added latency = (time the first agent audio frame is available to the leg's sender, i.e. the
  first `leg.outbound.push()` of the reply) − (time the frame that completes the endpointing silence was
  delivered to `leg.inbound`). That is end of user speech → first agent audio, minus the endpointing
  silence itself. Target ≤ 10 ms p99.
  Baseline: the same VAD + turn detector alone behind an asyncio queue (a bare consumer task), from
  delivering that same frame to the end-of-turn decision.
- barge-in latency = (delivery of the caller's first voiced frame while the agent speaks) → (the first
  sender tick that finds the queue empty, i.e. agent audio stops leaving). Target ≤ 100 ms p95.
  Baseline: the bare VAD + turn detector's speech-start decision for the same audio (needs 3 voiced
  frames of 4), plus one 20 ms tick.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from legs import MemoryLeg, espeak_speech  # noqa: E402

from agent_runtime.agent_config import AgentConfig  # noqa: E402
from agent_runtime.call import Call  # noqa: E402
from agent_runtime.conversation import Conversation  # noqa: E402
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS  # noqa: E402
from agent_runtime.turn_taking import TurnDetector  # noqa: E402
from media.frames import AudioFrame, samples_per_frame  # noqa: E402
from media.vad import WebRtcVad  # noqa: E402

SENTENCE = "What time does the store open tomorrow?"
ENDPOINTING_MS = 500


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values)
    return {"n": len(values), "p50": round(float(np.percentile(arr, 50)), 2),
            "p95": round(float(np.percentile(arr, 95)), 2), "p99": round(float(np.percentile(arr, 99)), 2),
            "max": round(float(arr.max()), 2)}


def frames_of(samples: np.ndarray, rate: int) -> np.ndarray:
    n = samples_per_frame(rate)
    count = -(-len(samples) // n)
    padded = np.zeros(count * n, dtype=np.int16)
    padded[:len(samples)] = samples
    return padded.reshape(count, n)


def offline_marks(frames: np.ndarray, rate: int) -> tuple[int, int, int]:
    """Frame indexes of: the first voiced frame of the start window, the start decision, the end decision."""
    vad, detector = WebRtcVad(sample_rate=rate), TurnDetector(endpointing_ms=ENDPOINTING_MS)
    voiced = [vad.is_speech(frame) for frame in frames]
    start = end = -1
    for i, frame in enumerate(frames):
        event = detector.feed(frame, voiced[i])
        if event == "start" and start < 0:
            start = i
        elif event == "end" and end < 0:
            end = i
    if start < 0 or end < 0:
        raise SystemExit("the synthetic utterance did not produce a start and an end of speech")
    first_voiced = min(i for i in range(max(0, start - 3), start + 1) if voiced[i])
    return first_voiced, start, end


async def baseline(frames: np.ndarray, rate: int, repeats: int) -> tuple[list[float], list[float]]:
    """Bare VAD + turn detector behind an asyncio queue: delivery → decision, for end and start."""
    ends, starts = [], []
    loop = asyncio.get_running_loop()
    for _ in range(repeats):
        queue: asyncio.Queue = asyncio.Queue()
        vad, detector = WebRtcVad(sample_rate=rate), TurnDetector(endpointing_ms=ENDPOINTING_MS)
        delivered: list[float] = []

        async def consume(queue: asyncio.Queue = queue, vad: WebRtcVad = vad,
                          detector: TurnDetector = detector) -> None:
            while (frame := await queue.get()) is not None:
                event = detector.feed(frame.samples, vad.is_speech(frame.samples))
                if event == "start":
                    starts.append((loop.time() - frame.timestamp) * 1000)
                elif event == "end":
                    ends.append((loop.time() - frame.timestamp) * 1000)

        consumer = loop.create_task(consume())
        for frame in frames:
            delivered.append(loop.time())
            queue.put_nowait(AudioFrame(frame, rate, loop.time()))
            await asyncio.sleep(0.001)  # let the consumer run, as a transport's frames arrive apart
        queue.put_nowait(None)
        await consumer
    return ends, starts


async def feed_frames(leg: MemoryLeg, frames: np.ndarray) -> list[float]:
    """Deliver frames one per clock tick; returns each frame's delivery time."""
    times = []
    loop = asyncio.get_running_loop()
    for frame in frames:
        await leg.clock.tick()
        times.append(loop.time())
        leg.deliver_audio(AudioFrame(frame.copy(), leg.sample_rate, loop.time()))
    return times


async def run_call(rate: int, turns: int, barge_ins: int, tts_speed: float = 1.0) -> dict:
    speech = espeak_speech(SENTENCE, rate)
    frames = frames_of(np.concatenate((speech, np.zeros(rate, dtype=np.int16))), rate)  # + 1 s of silence
    first_voiced, start_idx, end_idx = offline_marks(frames, rate)

    leg = MemoryLeg(rate)
    config = AgentConfig(stt=FakeSTT("what time does the store open tomorrow"), llm=FakeLLM(), tts=FakeTTS(),
                         endpointing_ms=ENDPOINTING_MS, call_user_alert_duration=0, call_end_duration=0,
                         speed=tts_speed)
    conversation = Conversation(leg, config)
    call = Call(leg, conversation)
    call.start()
    states = lambda: [e["state"] for e in leg.events_of("agent_state")]  # noqa: E731

    added, barge, internal, stages = [], [], [], []
    try:
        for turn in range(turns + barge_ins):
            speaking_before = states().count("speaking")
            pushes_before = len(leg.outbound.pushes)
            times = await feed_frames(leg, frames[:end_idx + 1])
            decided_at = times[end_idx]
            feeder = asyncio.get_running_loop().create_task(feed_frames(leg, frames[end_idx + 1:]))
            await leg.wait_for(lambda _, before=pushes_before: len(leg.outbound.pushes) > before, 10)
            added.append((leg.outbound.pushes[pushes_before][0] - decided_at) * 1000)
            if turn >= turns:  # barge-in turn: speak again 300 ms into the reply
                feeder.cancel()  # the rest was silence: stop it, the barge-in speech follows
                await leg.wait_for(lambda _, before=speaking_before: states().count("speaking") > before, 10)
                await asyncio.sleep(0.3)
                sent_before = len(leg.sent)
                times = await feed_frames(leg, frames[:start_idx + 8])
                onset = times[first_voiced]
                await leg.wait_for(lambda _: leg.outbound.clears, 10)
                await leg.wait_for(lambda _, at=onset, sent=sent_before:
                                   any(f.samples is None and f.at > at for f in leg.sent[sent:]), 5)
                stopped = next(f.at for f in leg.sent[sent_before:] if f.samples is None and f.at > onset)
                barge.append((stopped - onset) * 1000)
                leg.outbound.clears.clear()
                await feed_frames(leg, frames[start_idx + 8:])
            else:
                await feeder
            # Idle again: the reply (to the barge-in speech, on barge-in turns) has played out.
            await leg.wait_for(lambda _: conversation.state == "listening" and not leg.outbound.queued_samples, 20)
        while not call.updates.empty():
            update = call.updates.get_nowait()
            if type(update).__name__ == "TurnTiming" and update.response_ms is not None:
                internal.append(update.response_ms)
                stages.append({"stt_ms": update.stt_ms, "llm_first_token_ms": update.llm_first_token_ms,
                               "tts_first_audio_ms": update.tts_first_audio_ms})
    finally:
        await call.end("bench_done")
        await leg.close()
    ends, starts = await baseline(frames, rate, max(3, turns))
    return {"added_latency_ms": added, "barge_in_latency_ms": barge, "internal_response_ms": internal, "stages": stages,
            "baseline_end_decision_ms": ends, "baseline_start_decision_ms": starts,
            "speech_start_decision_frames": start_idx - first_voiced + 1}


def report(raw: dict, rate: int) -> dict:
    base_start = raw["baseline_start_decision_ms"]
    floor = [v + 20.0 + (raw["speech_start_decision_frames"] - 1) * 20.0 for v in base_start]
    summary = {
        "rate": rate,
        "added_latency_ms": percentiles(raw["added_latency_ms"]),
        "baseline_vad_endpointing_ms": percentiles(raw["baseline_end_decision_ms"]),
        "internal_response_ms": percentiles(raw["internal_response_ms"]),
        "barge_in_latency_ms": percentiles(raw["barge_in_latency_ms"]),
        "baseline_barge_in_floor_ms": percentiles(floor),
        "targets": {"added_latency_p99_ms": 10, "barge_in_p95_ms": 100},
    }
    b = summary["added_latency_ms"]["p99"]
    base = summary["baseline_vad_endpointing_ms"]["p99"]
    summary["added_latency_vs_baseline_p99"] = round(b / base, 2) if b is not None and base else None
    g = summary["barge_in_latency_ms"]["p95"]
    gf = summary["baseline_barge_in_floor_ms"]["p95"]
    summary["barge_in_vs_floor_p95"] = round(g / gf, 2) if g is not None and gf else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 turns and 2 barge-ins")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--barge-ins", type=int, default=10)
    parser.add_argument("--rate", type=int, default=48000, choices=(48000, 16000, 8000))
    parser.add_argument("--tts-speed", type=float, default=1.0,
                        help="fake voice speed; > 1 shortens replies (and the run) without changing what is measured")
    parser.add_argument("--json", type=Path, help="write figures (and raw samples) to this file")
    args = parser.parse_args()
    turns, barge_ins = (3, 2) if args.quick else (args.turns, args.barge_ins)
    started = time.monotonic()
    raw = asyncio.run(run_call(args.rate, turns, barge_ins, args.tts_speed))
    summary = report(raw, args.rate)
    print(f"bench_pipeline: {turns} turns + {barge_ins} barge-ins at {args.rate} Hz, FAKE providers, "
          f"MemoryLeg on the 20 ms MediaClock ({time.monotonic() - started:.0f} s)")
    print("'first agent audio frame' = the reply's first leg.outbound.push(): audio available to the sender")
    rows = [("added latency (end of speech → first agent audio − endpointing)", "added_latency_ms"),
            ("  baseline: bare VAD endpointing decision", "baseline_vad_endpointing_ms"),
            ("  conversation's own TurnTiming.response_ms", "internal_response_ms"),
            ("barge-in (caller onset → agent audio stops leaving)", "barge_in_latency_ms"),
            ("  floor: bare VAD start decision + one tick", "baseline_barge_in_floor_ms")]
    print(f"{'figure':66} {'n':>4} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}   (ms)")
    for label, key in rows:
        p = summary[key]
        cells = " ".join(f"{p[k]:8.2f}" if p[k] is not None else f"{'-':>8}" for k in ("p50", "p95", "p99", "max"))
        print(f"{label:66} {p['n']:4d} {cells}")
    ok_added = (summary["added_latency_ms"]["p99"] or 0) <= 10
    ok_barge = (summary["barge_in_latency_ms"]["p95"] or 0) <= 100
    print(f"targets: added p99 ≤ 10 ms: {'met' if ok_added else 'MISSED'}; "
          f"barge-in p95 ≤ 100 ms: {'met' if ok_barge else 'MISSED'}; "
          f"ratios vs baseline: added/endpointing p99 {summary['added_latency_vs_baseline_p99']}, "
          f"barge-in/floor p95 {summary['barge_in_vs_floor_p95']}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "raw": raw}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
