"""Smoke run of scripts/bench_dsp.py so it does not rot (its figures are not checked: no timing here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_dsp_quick_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_dsp.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DSP kernels" in proc.stdout
    results = json.loads(out.read_text())["results"]
    kernels = {r["kernel"] for r in results}
    for expected in ("resample 48k→16k", "resample 22.05k→48k", "resample 22.05k→8k", "resample 16k→8k",
                     "downmix stereo 48k → mono", "gain -6 dB (saturating) 16k", "mix two (saturating) 16k",
                     "energy (rms) 16k"):
        assert expected in kernels
    assert {r["mode"] for r in results} == {"single", "batch 4"}
    for r in results:
        assert r["ours_us"] > 0
        assert r["speedups"].keys() == r["baselines_us"].keys()
    resample_row = next(r for r in results if r["kernel"] == "resample 48k→16k" and r["mode"] == "single")
    assert {"soxr.resample"} <= resample_row["baselines_us"].keys()
