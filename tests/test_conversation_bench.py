"""Smoke run of scripts/bench_pipeline.py with tiny sizes, so the benchmark does not rot (figures not judged)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_pipeline_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_pipeline.py"), "--turns", "1", "--barge-ins", "1",
         "--rate", "8000", "--tts-speed", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "first agent audio frame" in proc.stdout and "barge-in" in proc.stdout
    summary = json.loads(out.read_text())["summary"]
    assert summary["added_latency_ms"]["n"] == 2
    assert summary["barge_in_latency_ms"]["n"] == 1
    assert summary["baseline_vad_endpointing_ms"]["n"] >= 1
    assert summary["barge_in_latency_ms"]["p50"] > 0
