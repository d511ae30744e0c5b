"""A smoke run of scripts/bench_campaign.py with tiny sizes, so it does not rot. No timing assertions."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("placer", ["hold", pytest.param("sip", marks=pytest.mark.skipif(
    not shutil.which("sipp"), reason="sipp (Debian sip-tester) is not installed"))])
def test_bench_campaign_dials_every_candidate(tmp_path: Path, placer: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_campaign.py"), "--placer", placer, "--prospects", "30",
         "--max-concurrent", "10", "--cps", "50", "--hold", "0.5", "--limit", "60", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["completed"] and result["answered"] == 30
    assert result["in_flight_max"] <= 10 and result["statements_per_dial"] > 0
