"""Benchmark: voice-to-voice latency of the embedded local stack on this CPU.

A `talkwire serve --providers local` child process (WHISPER tiny.en + LOCAL SmolLM2 + PIPER, the defaults
of that mode) takes one synthetic web caller who says espeak-ng sentences and waits for each answer. Reported:

- at the caller: end of the caller's speech → first agent audio heard (p50/p95), which includes the
  endpointing silence the turn detector waits for, the network and the jitter buffer;
- at the server (the call's timeline `timing` events, exact per turn): VAD end → STT final, LLM first
  token, TTS first audio, and the server's response time (end of speech decided → first agent audio
  handed to the leg), p50/p95. `stt` is what STT added after the end of speech was decided; `stt_run` is
  the STT call's own duration, which a speculative transcription (started at the caller's pause) overlaps
  with the endpointing wait.

A warm-up call (one turn, not measured) runs first, so model loading is not in the figures.

    .venv/bin/python scripts/bench_local_stack.py --turns 8
    .venv/bin/python scripts/bench_local_stack.py --quick --json out.json   # smoke run (the tests run it)

Target (issue 6): end of speech → first agent audio ≤ 1.2 s p50 on 2 cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.audio import SENTENCES, SpeechCache, Turn  # noqa: E402
from loadtest.server import local_server  # noqa: E402
from loadtest.stats import percentiles  # noqa: E402
from loadtest.step import run_step  # noqa: E402

TURN_LIMIT_S = 30.0  # the call's time limit per turn; a call hangs up as soon as its turns are done


async def turn_timings(base_url: str, secret_key: str, call_id: str) -> list[dict]:
    """The call's per-turn stage latencies, exact, from its timeline's `timing` events."""
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.get(f"{base_url}/calls/{call_id}", headers={"X-API-Key": secret_key})
    response.raise_for_status()
    return [event["data"] for event in response.json()["timeline"] if event["kind"] == "timing"]


async def bench(turns: int, warmup: bool, workdir: Path) -> dict:
    script = tuple(Turn("speech", SENTENCES[i % len(SENTENCES)]) for i in range(len(SENTENCES)))
    speech = SpeechCache(workdir / "audio-cache")
    await speech.prepare(script)
    async with local_server("talkwire", workdir / "talkwire", providers="local") as target:
        if warmup:
            await run_step(target, 1, TURN_LIMIT_S * 2, speech, script=script, max_turns=1,
                           host_addresses=("127.0.0.1",))
        step = await run_step(target, 1, TURN_LIMIT_S * (turns + 1), speech, script=script, max_turns=turns,
                              host_addresses=("127.0.0.1",))
        call = step["calls"][0]
        timings = await turn_timings(target.base_url, target.secret, call["call_id"]) if call["call_id"] else []
    summary = step["summary"]
    stages = {stage: percentiles(t.get(f"{stage}_ms") for t in timings)
              for stage in ("stt", "stt_run", "llm_first_token", "tts_first_audio", "response")}
    return {
        "turns_answered": len(call["response_ms"]),
        "call_ok": call["ok"],
        "error": call["error"],
        "caller_response_ms": summary["response_latency_ms"],
        "server_stages_ms": stages,
        "stt_speculative_turns": sum(1 for t in timings if t.get("stt_speculative")),
        "turn_timings": timings,
        "wer": summary["wer"],
        "transcripts": call["transcripts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=8, help="measured turns")
    parser.add_argument("--quick", action="store_true", help="smoke run: no warm-up, 1 turn")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args()
    if args.quick:
        args.turns = 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-local-stack-"))
    result = asyncio.run(bench(args.turns, not args.quick, workdir))
    stages = result["server_stages_ms"]
    print(f"{result['turns_answered']} turns answered (call ok: {result['call_ok']}, WER {result['wer']})")
    print(f"end of speech → first agent audio at the caller: p50 {result['caller_response_ms']['p50']} ms, "
          f"p95 {result['caller_response_ms']['p95']} ms")
    print("server p50 / p95: " + ", ".join(f"{name} {s['p50']} / {s['p95']} ms" for name, s in stages.items()))
    print(f"speculative final transcripts used: {result['stt_speculative_turns']} of {len(result['turn_timings'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
