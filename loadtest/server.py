"""The server under test: a local `talkwire serve` (or the echo baseline) as a child process, or one given by URL.

Without `--against`, the server is a child process (`talkwire serve --providers fake|local` on a free port and
a fresh data directory), pinned to one core when the machine has two or more, while this process (the callers)
runs on the other cores: the server's CPU is then one core, and the highest call count that holds is its calls
per core. The load tester talks to it only as a client does: its command line, its banner, its HTTP API.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx

if TYPE_CHECKING:
    from loadtest.sip import SipLoadGenerator

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Target:
    base_url: str
    key: str
    agent_id: str
    kind: str  # "talkwire" | "echo"
    pinned_cpu: int | None = None
    pid: int | None = None
    leg: str = "web"  # "web": aiortc callers; "sip": the server dials the generator; "sip-in": the reverse
    secret: str | None = None  # a secret key (SIP calls need one)
    generator: SipLoadGenerator | None = None  # the SIP trunk the server dials (--leg sip/sip-in)
    sip_address: str | None = None  # "host:port" of the server's SIP user agent (its banner)
    inbound_to: str | None = None  # "number@host:port" the inbound SIP callers dial


def plan_cpus(requested: int | None) -> tuple[int | None, set[int] | None]:
    """(core for the server, cores for this process), or (None, None) where pinning is not possible."""
    if requested is None or not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    server = requested if requested in cores else cores[-1]
    return server, set(cores) - {server}


# A load test measures how many calls a server carries, not its rate limits and quotas: its own child server
# has them off (a server given by --against keeps its own; raise them there, docs/configuration.md).
NO_CALL_LIMITS = {"TALKWIRE_CALLS_PER_MINUTE_PER_KEY": "0", "TALKWIRE_CALLS_PER_MINUTE_PER_IP": "0",
                  "TALKWIRE_OFFERS_PER_MINUTE_PER_IP": "0", "TALKWIRE_MAX_CALLS_PER_CLIENT": "0"}


@asynccontextmanager
async def local_server(kind: str, workdir: Path, *, providers: str = "fake", cpu: int | None = None,
                       env: dict[str, str] | None = None, startup_timeout: float = 180.0) -> AsyncIterator[Target]:
    """`talkwire serve` (or the echo baseline) as a child process on a free loopback port.

    The server gets a fresh data directory under `workdir` (its first start prints the secret key used to
    pick the agent), removed when it stops; its log stays in `workdir`.
    """
    data, log = _workspace(workdir, kind)
    if kind == "echo":
        cmd = [sys.executable, "-m", "loadtest.echo", "--host", "127.0.0.1", "--port", "0"]
    else:
        cmd = [sys.executable, "-m", "control_api.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--providers", providers, "--data-dir", str(data), "--json", "--log-level", "warning"]
    child_env = {**os.environ, "TALKWIRE_ICE_HOST_ADDRESSES": "127.0.0.1", "TALKWIRE_SIP_BIND": "127.0.0.1:0",
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                 **NO_CALL_LIMITS}
    for name in ("TALKWIRE_SECRET_KEY", "TALKWIRE_PUBLISHABLE_KEY", "TALKWIRE_DATABASE_URL", "TALKWIRE_PORT"):
        child_env.pop(name, None)  # a fresh server with its own keys and database
    child_env.update(env or {})
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=log, env=child_env,
                                                stdin=asyncio.subprocess.DEVNULL, preexec_fn=preexec)
    assert proc.stdout is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), startup_timeout)
            banner = json.loads(line)
        except (TimeoutError, ValueError):
            raise RuntimeError(f"the {kind} server did not start; see {workdir / f'{kind}-server.log'}") from None
        drain = asyncio.get_running_loop().create_task(proc.stdout.read(), name="server-stdout")
        base = banner["url"].rstrip("/")
        agent = "echo" if kind == "echo" else await create_agent(base, banner["secret_key"])
        yield Target(base, banner["publishable_key"], agent, kind, cpu, proc.pid, secret=banner["secret_key"],
                     sip_address=banner.get("sip"))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly and ends the calls
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _workspace(workdir: Path, kind: str) -> tuple[Path, BinaryIO]:
    """A fresh data directory for the server under `workdir`, and its log file there."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
    return data, open(workdir / f"{kind}-server.log", "wb")  # closed when the server stops


LOAD_AGENT = {
    "name": "Load test agent",
    "welcome_message": "Hello! How can I help you today?",
    "agent_prompt": "You are a helpful voice assistant. Answer in one short sentence of plain spoken English.",
    "silence_alert_message": "Are you still there?",
}


async def create_agent(base_url: str, secret_key: str) -> str:
    """An agent on the server's default providers (no model/voice/transcription given: the catalog's defaults,
    i.e. FAKE with `--providers fake`), so the load measures what the mode promises. The seeded demo agent is
    not used: its stored choices name the local models whatever the mode."""
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.post(f"{base_url}/assistant", json=LOAD_AGENT, headers={"X-API-Key": secret_key})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"cannot create the load test agent: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["id"]


async def first_agent(base_url: str, key: str) -> str:
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.get(f"{base_url}/assistant", headers={"X-API-Key": key})
    if response.status_code != 200 or not response.json().get("agents"):
        raise RuntimeError(f"cannot pick an agent (GET /assistant: HTTP {response.status_code}); pass --agent ID")
    return response.json()["agents"][0]["id"]

