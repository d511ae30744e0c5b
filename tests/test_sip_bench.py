"""Smoke run of scripts/bench_sip.py (the SIP capacity benchmark): it must run end to end. No timing
assertions here; the figures are for the benchmark's own report."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(not (shutil.which("sipp") and shutil.which("espeak-ng") and shutil.which("sox")),
                       reason="sipp, espeak-ng and sox are needed"),
]


def test_bench_sip_quick_runs_calls_with_rtp_both_ways():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_sip.py"), "--quick", "--json",
                           "--cpu", "-1", "--peer-cpu", "-1"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["answered"] == result["calls"] == 5
    assert result["up_during_window"] == 5
    assert result["packets_sent_per_call_per_s"] > 10 and result["packets_received_per_call_per_s"] > 10
    assert result["packets_metered"] > 0 and result["lag_ms_p99"] is not None  # per packet, per call's grid
    assert result["ticks"] > 0 and result["tick_completion_ms_p99"] is not None
    assert 0 < result["cpu_percent_per_call"] < 100
