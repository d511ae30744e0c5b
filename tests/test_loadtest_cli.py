"""`talkwire loadtest` end to end: a local server child process (FAKE providers), two synthetic web callers
following the script (speech, silence, noise, barge-in), the summary table and the JSON file."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="the callers' speech is made by espeak-ng")


def test_loadtest_two_calls_against_a_local_server(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "control_api.cli", "loadtest", "--calls", "2", "--duration", "8",
         "--providers", "fake", "--cpu", "-1", "--json", str(out), "--report", str(tmp_path / "report"),
         "--data-dir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "talkwire loadtest" in proc.stdout and "calls ok / failed" in proc.stdout
    assert "first agent audio" in proc.stdout

    result = json.loads(out.read_text())
    summary = result["summary"]
    assert summary["calls_ok"] == 2 and summary["calls_failed"] == 0, summary["failures"]
    for key in ("setup_ms", "first_audio_ms", "response_latency_ms", "barge_in_latency_ms"):
        assert set(summary[key]) == {"p50", "p95", "p99", "max"}
    assert 0 < summary["setup_ms"]["p50"] <= summary["setup_ms"]["max"] < 30_000
    assert summary["first_audio_ms"]["p50"] is not None
    assert "wer" in summary and summary["packet_loss"] is not None
    assert len(result["calls"]) == 2
    for call in result["calls"]:
        assert call["ok"] and call["call_id"] and call["frames_received"] > 100
        assert call["spoken"], "each caller said at least its first sentence"
    # The server's side of the same calls, from its /metrics.
    server = result["server"]
    assert server["frames"] > 100 and server["cpu_cores"] > 0
    assert server["outcomes"] == {"webrtc/completed/remote_hangup": 2}
    # Cached speech is reused by the next run (deterministic audio).
    assert list((tmp_path / "work" / "audio-cache").glob("espeak-*.wav"))
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "latency_cdf.png").is_file()


@pytest.mark.sip
@pytest.mark.parametrize("leg", ["sip", "sip-in"])
def test_loadtest_sip_calls_both_directions(tmp_path: Path, leg: str) -> None:
    """--leg sip: the local server's trunk is the load tester's own SIP user agent, and the server dials it;
    --leg sip-in: a number linked to the agent through the API, called at the server's SIP address."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "control_api.cli", "loadtest", "--leg", leg, "--calls", "2", "--duration", "8",
         "--cpu", "-1", "--json", str(out), "--data-dir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert summary["calls_ok"] == 2 and summary["calls_failed"] == 0, summary["failures"]
    assert summary["first_audio_ms"]["p50"] is not None
    for call in result["calls"]:
        assert call["frames_received"] > 100 and call["packets_received"] > 100
        assert call["packets_lost"] is None  # our SIP stack keeps no loss count
    assert summary["packet_loss"] is None
    assert result["server"]["outcomes"] == {"sip/completed/remote_hangup": 2}
    if leg == "sip":  # the call record (and its transcript) is known for calls the server placed
        assert all(call["call_id"] for call in result["calls"]) and summary["wer"] is not None


def test_loadtest_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from control_api.cli import main

    assert main(["loadtest", "--against", "http://127.0.0.1:9"]) == 2
    assert "--against needs --key" in capsys.readouterr().err
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    port = closed.getsockname()[1]
    closed.close()
    code = main(["loadtest", "--against", f"http://127.0.0.1:{port}", "--key", "pk_live_x", "--calls", "1",
                 "--duration", "1", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("talkwire: error: cannot reach the server") and "Traceback" not in err
