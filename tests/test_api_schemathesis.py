"""schemathesis over every operation of /openapi.json, against `talkwire serve`, with every check.

The server runs as its own process (SQLite, FAKE providers) and is driven by the schemathesis command line,
as a user would run it: the document's examples, the coverage phase (boundary values, undeclared methods,
missing bodies) and a bounded, deterministic fuzzing phase. Every check: no 500, every status, header
and body documented, `Allow` on every 405, schema-valid requests accepted and schema-violating ones refused.

Bounded (`MAX_EXAMPLES` per operation and phase, one worker) so the file takes about a minute on two idle
cores (three on a busy machine).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import make_keys

MAX_EXAMPLES = 2
SEED = 20261204
# A refusal of a schema-violating request may also be 413: a generated body over maxItems can be over 1 MiB.
# Two rules no JSON schema states, so a schema-valid body may be refused (422) there, and only there:
# - an agent's model, voice and transcription must be active in the provider catalog (GET /discovery/...),
#   which depends on the providers and keys this server has;
# - a tool update is checked against the stored tool merged with the change (a `type: "server"` needs the
#   stored or the sent `server`);
# - a tool's parameters have distinct names (JSON Schema has no "unique by this key").
CONFIG = """
[checks]
enabled = true

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]

[[operations]]
include-operation-id = ["create_agent", "update_agent", "create_tool", "update_tool"]
checks.positive_data_acceptance.enabled = false
"""
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def talkwire_serve(data_dir: Path, log: list[str]) -> Iterator[tuple[str, str]]:
    """`talkwire serve` on a free loopback port: (base URL, secret key); its log is appended to `log`."""
    secret, publishable = make_keys()
    port = free_port()
    env = {**os.environ, "TALKWIRE_SECRET_KEY": secret, "TALKWIRE_PUBLISHABLE_KEY": publishable,
           "TALKWIRE_SIP_BIND": "off"}  # each trunk change resolves every trunk's host: slow where DNS is absent
    server = subprocess.Popen([str(BIN / "talkwire"), "serve", "--data-dir", str(data_dir), "--port", str(port),
                               "--providers", "fake", "--log-level", "warning"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "talkwire serve did not start"
            time.sleep(0.2)
        yield base, secret
    finally:
        server.terminate()
        log.append(server.communicate(timeout=30)[1])


def test_schemathesis_every_operation_every_check(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    log: list[str] = []
    with talkwire_serve(tmp_path / "data", log) as (base, secret):
        started = time.monotonic()
        run = subprocess.run(
            [str(BIN / "schemathesis"), "--config-file", str(config), "run", f"{base}/openapi.json",
             "-H", f"X-API-Key: {secret}", "--phases", "examples,coverage,fuzzing",
             "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--generation-deterministic",
             "--no-color", "--workers", "1"],
            capture_output=True, text=True, timeout=400, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
        took = time.monotonic() - started
    summary = run.stdout[run.stdout.rfind("SUMMARY"):] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    print(f"schemathesis: exit {run.returncode} in {took:.1f} s\n{summary}")
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 50, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert "Traceback" not in log[0], log[0][-5000:]  # nothing failed inside the server either
