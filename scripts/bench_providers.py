"""Benchmark: what each cloud provider path costs Talkwire per call, against the instant FAKE providers.

Run by hand (not in CI):  .venv/bin/python scripts/bench_providers.py [--calls 50] [--turns 2] [--json PATH]

For each path, `--calls` calls run at once in this process, each a Conversation on an in-memory leg
(tests/legs.py MemoryLeg, all on one shared 20 ms MediaClock, as one media worker) with the real WebRTC VAD
and turn detector. Each caller says an espeak-ng sentence per turn (fed in real time at `--rate`) and waits
for the answer to play. Paths:

- `fake`: STT, LLM and TTS all FAKE (the baseline);
- `deepgram`: STT DEEPGRAM, streaming (the caller's frames over a WebSocket as they come, JSON results);
- `azure`: LLM AZURE (HTTP streaming, server-sent events, JSON per token);
- `elevenlabs`: TTS ELEVENLABS (HTTP streaming PCM at the leg's rate);
- `seed`: all three together (the seed's own agent).

Each vendor is its local fake (tests/vendor_fakes/, the vendor's documented protocol), each in its own child
process, so its own CPU is not counted: what is measured is Talkwire's side of the protocol (framing, JSON,
base64 or PCM decoding, resampling where the path has it). Reported per path:

- CPU per call: this process's CPU seconds / wall seconds / calls (a fraction of one core per live call),
  and what the path adds over `fake`;
- response per turn (the timeline's `response_ms`: end of the caller's speech decided → first agent audio
  handed to the leg), p50/p95, and what the path adds over `fake` at p50.

Target (issue 12): no vendor path adds more than 1 % of a core per call or 20 ms per turn.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from legs import MemoryLeg, espeak_speech  # noqa: E402

from agent_runtime.agent_config import AgentConfig  # noqa: E402
from agent_runtime.call import Call  # noqa: E402
from agent_runtime.conversation import Conversation, State  # noqa: E402
from agent_runtime.providers.azure_openai import azure_llm  # noqa: E402
from agent_runtime.providers.base import (  # noqa: E402
    LanguageModel,
    LLMChunk,
    SpeechToText,
    TextDelta,
    TextToSpeech,
)
from agent_runtime.providers.deepgram import DeepgramSTT  # noqa: E402
from agent_runtime.providers.elevenlabs import ElevenLabsTTS, VoiceDirectory  # noqa: E402
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS  # noqa: E402
from agent_runtime.providers.remote import Timeouts  # noqa: E402
from agent_runtime.updates import TurnTiming  # noqa: E402
from media.pacing import MediaClock  # noqa: E402

SENTENCE = "What time does the store open tomorrow?"
HEARD = "what time does the store open tomorrow"
REPLY = "The store opens at nine."
PATHS = ("fake", "deepgram", "azure", "elevenlabs", "seed")
TIMEOUTS = Timeouts(connect=5.0, first_result=10.0)


# ---- the vendors' fakes, in a child process -------------------------------------------------------------

async def serve_fake(name: str) -> None:
    """Child process: start one vendor's fake, print its address and key, serve until stdin closes."""
    from vendor_fakes.azure import AzureOpenAIFake
    from vendor_fakes.deepgram import DeepgramFake
    from vendor_fakes.elevenlabs import ElevenLabsFake

    if name == "deepgram":
        fake: Any = DeepgramFake(transcripts=[HEARD])
    elif name == "azure":
        fake = AzureOpenAIFake(default_text=REPLY)
    else:
        fake = ElevenLabsFake()
    async with fake:
        print(json.dumps([fake.base_url, fake.api_key]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class Vendors:
    def __init__(self, addresses: dict[str, list[str]]) -> None:  # vendor -> [base URL, key]
        self.addresses = addresses
        self._voices: VoiceDirectory | None = None

    def stt(self, path: str) -> SpeechToText:
        if path in ("deepgram", "seed"):
            url, key = self.addresses["deepgram"]
            return DeepgramSTT("nova-2", key, url, language="en-US", timeouts=TIMEOUTS)
        return FakeSTT(HEARD)

    def llm(self, path: str) -> LanguageModel:
        if path in ("azure", "seed"):
            endpoint, key = self.addresses["azure"]
            return azure_llm("gpt-4.1-mini", endpoint=endpoint, api_key=key, deployment_map={}, timeout=10.0)
        return _FixedLLM()

    def tts(self, path: str, rate: int) -> TextToSpeech:
        if path in ("elevenlabs", "seed"):
            url, key = self.addresses["elevenlabs"]
            if self._voices is None:
                self._voices = VoiceDirectory(key, url, TIMEOUTS)
            voice = ElevenLabsTTS("Riya Rao", self._voices, timeouts=TIMEOUTS)
            voice.sample_rate = rate  # the leg's own rate: no resampling hop
            return voice
        return FakeTTS()


class _FixedLLM(FakeLLM):
    """FAKE with the same reply as the Azure fake's, so both paths speak the same words."""

    async def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[LLMChunk]:
        for i, word in enumerate(REPLY.split(" ")):
            await asyncio.sleep(0)
            yield TextDelta(word if i == 0 else " " + word)


# ---- one path ---------------------------------------------------------------------------------------------

async def one_call(vendors: Vendors, path: str, clock: MediaClock, rate: int, turns: int,
                   delay: float) -> list[TurnTiming]:
    await asyncio.sleep(delay)
    leg = MemoryLeg(rate, clock)
    stt = vendors.stt(path)
    config = AgentConfig(stt=stt, llm=vendors.llm(path), tts=vendors.tts(path, rate), welcome_message=None,
                         call_user_alert_duration=0, call_end_duration=0, speed=2.0)
    call = Call(leg, Conversation(leg, config))
    call.start()
    speech = espeak_speech(SENTENCE, rate)
    timings: list[TurnTiming] = []
    try:
        for turn in range(turns):
            await leg.feed(np.concatenate((speech, np.zeros(int(0.7 * rate), dtype=np.int16))))
            await leg.wait_for(lambda _, turn=turn: len([e for e in leg.events_of("transcription")
                                                         if e["role"] == "agent" and e["is_final"]]) > turn, 30)
            await leg.wait_for(lambda _: call.conversation.state is State.LISTENING
                               and not leg.outbound.queued_samples, 30)
    finally:
        await call.end("caller_hangup")
        await leg.close()
        close = getattr(stt, "aclose", None)
        if close is not None:
            await close()
    while not call.updates.empty():
        update = call.updates.get_nowait()
        if isinstance(update, TurnTiming):
            timings.append(update)
    return timings


async def run_path(vendors: Vendors, path: str, calls: int, rate: int, turns: int,
                   spread: float) -> dict[str, Any]:
    clock = MediaClock()
    cpu, wall = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(one_call(vendors, path, clock, rate, turns, spread * i / calls)
                                     for i in range(calls)), return_exceptions=True)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    failed = [r for r in results if isinstance(r, BaseException)]
    timings = [t for r in results if not isinstance(r, BaseException) for t in r]
    response = [t.response_ms for t in timings if t.response_ms is not None]
    return {
        "path": path, "calls": calls, "failed_calls": len(failed), "turns": len(response),
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "cpu_per_call_pct": round(100 * cpu / wall / calls, 3),
        "response_ms_p50": round(float(np.percentile(response, 50)), 1) if response else None,
        "response_ms_p95": round(float(np.percentile(response, 95)), 1) if response else None,
        "errors": sorted({repr(f)[:160] for f in failed}),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    children = {name: subprocess.Popen([sys.executable, __file__, "--serve-fake", name],  # noqa: ASYNC220
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for name in ("deepgram", "azure", "elevenlabs")}  # one process each: no fake waits on another
    try:
        vendors = Vendors({name: json.loads(child.stdout.readline())  # type: ignore[union-attr]
                           for name, child in children.items()})
        espeak_speech(SENTENCE, args.rate)  # made once, before any measurement
        rows = []
        for path in args.paths:
            row = await run_path(vendors, path, args.calls, args.rate, args.turns, args.spread)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for child in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait(10)
    base = next((r for r in rows if r["path"] == "fake"), None)
    if base is not None:
        for row in rows:
            row["added_cpu_per_call_pct"] = round(row["cpu_per_call_pct"] - base["cpu_per_call_pct"], 3)
            if row["response_ms_p50"] is not None and base["response_ms_p50"] is not None:
                row["added_response_ms_p50"] = round(row["response_ms_p50"] - base["response_ms_p50"], 1)
    return {"calls": args.calls, "turns": args.turns, "rate": args.rate, "paths": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--rate", type=int, default=8000, help="the leg's rate: 8000 (SIP) or 48000 (web)")
    parser.add_argument("--paths", type=lambda s: s.split(","), default=list(PATHS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--spread", type=float, default=4.0,
                        help="seconds over which the calls start (about one turn: turns end spread out, as in "
                             "steady traffic, rather than all in the same second)")
    parser.add_argument("--serve-fake", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_fake:
        asyncio.run(serve_fake(options.serve_fake))
        sys.exit(0)
    report = asyncio.run(main(options))
    print("\npath        cpu/call %   +cpu %   response p50/p95 ms   +p50 ms   failed")
    for r in report["paths"]:
        print(f"{r['path']:<11} {r['cpu_per_call_pct']:>9.3f} {r.get('added_cpu_per_call_pct', 0):>8.3f}"
              f"   {r['response_ms_p50']!s:>8} / {r['response_ms_p95']!s:<8}  {r.get('added_response_ms_p50', 0)!s:>8}"
              f"   {r['failed_calls']}")
    if options.json:
        options.json.write_text(json.dumps(report, indent=2))
