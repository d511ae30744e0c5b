"""Loading the embedded LLM leaves the process's stdout and stderr alone: it loads in a thread beside the event
loop, and llama-cpp-python used to point file descriptors 1 and 2 at /dev/null meanwhile, so the startup banner
(`talkwire serve --json`) and other threads' output could vanish."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent_runtime.providers.local_llm import available

pytestmark = [pytest.mark.models,
              pytest.mark.skipif(not available(), reason="the embedded SmolLM2 model is not installed")]

ROOT = Path(__file__).resolve().parent.parent

WRITER = """
import sys, threading
from agent_runtime.providers.local_llm import LocalLLM

llm = LocalLLM()
loaded = threading.Event()
threading.Thread(target=lambda: (llm._engine.llama(), loaded.set())).start()
lines = 0
while not loaded.is_set() or lines < 100:
    lines += 1
    print(f"out {lines}", flush=True)
    print(f"err {lines}", file=sys.stderr, flush=True)
print(f"total {lines}", flush=True)
"""


def test_output_written_while_the_model_loads_is_kept() -> None:
    done = subprocess.run([sys.executable, "-c", WRITER], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    total = int(out[-1].split()[1])
    assert out[:-1] == [f"out {i}" for i in range(1, total + 1)]
    err = [line for line in done.stderr.splitlines() if line.startswith("err ")]
    assert err == [f"err {i}" for i in range(1, total + 1)]
