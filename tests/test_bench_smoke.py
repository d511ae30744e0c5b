"""Smoke runs of the benchmark scripts with tiny sizes, so they do not rot (bench_dsp and bench_sip have their
own). No timing assertions: the figures are for the benchmarks' own reports, on a quiet machine."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="the callers' speech is made by espeak-ng")


def run_bench(name: str, tmp_path: Path, *extra: str, timeout: float = 240) -> dict:
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / name), "--quick", "--json", str(out), *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_bench_webrtc_sweeps_talkwire_and_the_echo_baseline(tmp_path: Path) -> None:
    result = run_bench("bench_webrtc.py", tmp_path, "--cpu", "-1")
    figures = result["figures"]
    assert figures["calls_failed"] == 0
    assert figures["talkwire_cpu_per_call_pct"] > 0 and figures["echo_cpu_per_call_pct"] > 0
    assert figures["cpu_per_call_vs_echo"] is not None
    for kind in ("talkwire", "echo"):
        steps = result["sweep"][kind]["steps"]
        assert [s["concurrent_calls"] for s in steps] == [1]
        assert all(s["server"]["frames"] > 50 and s["server"]["cpu_cores"] > 0 for s in steps)


def test_bench_memory_reports_memory_per_call_and_growth(tmp_path: Path) -> None:
    result = run_bench("bench_memory.py", tmp_path, "--cpu", "-1")
    assert result["calls_failed"] == 0
    assert len(result["rss_idle_mb"]) == 3 and all(v > 20 for v in result["rss_idle_mb"])
    assert len(result["rss_loaded_mb"]) == 2
    assert result["mb_per_call"] is not None and result["growth_mb_after_first_round"] is not None


@pytest.mark.models
def test_bench_local_stack_answers_a_turn_with_the_embedded_models(tmp_path: Path) -> None:
    result = run_bench("bench_local_stack.py", tmp_path, timeout=300)
    assert result["call_ok"], result["error"]
    assert result["turns_answered"] == 1
    assert result["caller_response_ms"]["p50"] > 0
    stages = result["server_stages_ms"]
    # `stt` (what STT added after the end of speech) is ~0 when the speculative transcription finished in the
    # endpointing wait; the STT call itself always took time.
    assert stages["stt"]["p50"] >= 0 and stages["stt_run"]["p50"] > 0 and stages["response"]["p50"] > 0
    assert result["wer"] is not None and result["wer"] < 0.5  # Whisper on espeak speech: a few errors at most
