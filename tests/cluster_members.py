"""Members of a deployment for the many-workers tests: real Redis and PostgreSQL on loopback, FAKE providers.

    async with in_process_members(tmp_path, pg_url, redis_url, 3, max_calls=1) as members:   # threads
    async with process_members(tmp_path, pg_url, redis_url, 3) as members:                   # `talkwire serve`

Each member has its own id (m1, m2, …), HTTP port, SIP port, RTP range and data directory; they share the
database, the Redis (a database number of its own, emptied first) and the keys. In-process members expose their
Runtime (read it, never await on it from the test's loop); process members can be killed (`kill -9`) or sent
SIGTERM.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from conftest import make_keys, run_live_server
from redis.asyncio import Redis

from control_api.runtime import Runtime
from control_api.settings import Settings

# The Redis database these tests use, emptied at each start: one per pytest-xdist worker, so members of tests
# running side by side never see each other (scripts/bench_cluster.py uses database 10).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
REDIS_DB = 11 + int(_WORKER[2:]) % 5 if _WORKER.startswith("gw") else 9
FAKE_STACK = {
    "model": {"provider": "FAKE", "model": "echo"},
    "transcription": {"provider": "FAKE", "model": "scripted"},
    "voice": {"provider": "FAKE", "name": "tone"},
}
CLUSTER_SETTINGS: dict[str, Any] = {"heartbeat_interval": 0.3, "heartbeat_ttl": 1.0, "cluster_secret": "test-secret"}


def redis_db_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"


async def empty_redis(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@dataclass
class Member:
    id: str
    base_url: str
    secret_key: str
    publishable_key: str
    runtime: Runtime | None = None  # in-process members only
    proc: subprocess.Popen[bytes] | None = None  # process members only
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sip_port(self) -> int:
        if self.runtime is not None:
            assert self.runtime.sip is not None
            return self.runtime.sip.local_address[1]
        return int(str(self.info["sip"]).rsplit(":", 1)[1])

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            return await http.request(method, path, headers={"X-API-Key": self.secret_key}, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        assert response.status_code == 200, (self.id, path, response.status_code, response.text)
        return response.json()

    async def agent(self) -> str:
        agent = await self.ok("POST", "/assistant", json={
            "name": "Cluster agent", "welcome_message": "Hello.", "agent_prompt": "You talk.",
            "call_end_duration": 0, "call_user_alert_duration": 0, **FAKE_STACK})
        return str(agent["id"])

    async def call(self, call_id: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.ok("GET", f"/calls/{call_id}")
        return record


async def wait_for(check: Any, timeout: float = 15.0, interval: float = 0.2) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy; that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(interval)


def member_settings(base: Path, index: int, database_url: str, redis_url: str, keys: tuple[str, str],
                    **overrides: Any) -> Settings:
    data_dir = base / f"m{index}"
    data_dir.mkdir(parents=True, exist_ok=True)
    rtp = 40000 + index * 1000
    return Settings(data_dir=data_dir, host="127.0.0.1", port=8080, secret_key=keys[0], publishable_key=keys[1],
                    providers="fake", database_url=database_url, redis_url=redis_url, member_id=f"m{index}",
                    sip_bind="127.0.0.1:0", rtp_port_min=rtp, rtp_port_max=rtp + 998,
                    **{**CLUSTER_SETTINGS, **overrides})


@asynccontextmanager
async def in_process_members(base: Path, database_url: str, redis_url: str, count: int,
                             **overrides: Any) -> AsyncIterator[list[Member]]:
    url = redis_db_url(redis_url)
    await empty_redis(url)
    keys = make_keys()
    async with AsyncExitStack() as stack:
        members = []
        for index in range(1, count + 1):  # one after the other: the first one migrates the database
            manager = run_live_server(member_settings(base, index, database_url, url, keys, **overrides),
                                      startup_timeout=120)
            server = await asyncio.to_thread(manager.__enter__)
            stack.push_async_callback(asyncio.to_thread, manager.__exit__, None, None, None)
            members.append(Member(f"m{index}", server.base_url, keys[0], keys[1],
                                  runtime=server.app.state.runtime))
        yield members


def start_process(base: Path, index: int, database_url: str, redis_url: str, keys: tuple[str, str],
                  **overrides: Any) -> Member:
    settings = member_settings(base, index, database_url, redis_url, keys, **overrides)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, value in settings.model_dump(exclude_none=True).items():
        if name in ("host", "port") or isinstance(value, (list, dict)):
            continue
        env[f"TALKWIRE_{name.upper()}"] = str(value)
    log = (base / f"m{index}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "control_api.cli", "serve", "--json", "--host", "127.0.0.1",
                             "--port", "0", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=log, cwd=Path(__file__).resolve().parent.parent)
    return Member(f"m{index}", "", keys[0], keys[1], proc=proc)


async def started(member: Member, timeout: float = 120.0) -> Member:
    """Wait for a process member's banner (JSON) and note its URL and SIP address."""
    assert member.proc is not None and member.proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(member.proc.stdout.readline), timeout)
    assert line, f"member {member.id} exited at start (code {member.proc.poll()})"
    member.info = json.loads(line)
    member.base_url = str(member.info["url"]).rstrip("/")
    return member


@asynccontextmanager
async def process_members(base: Path, database_url: str, redis_url: str, count: int,
                          **overrides: Any) -> AsyncIterator[list[Member]]:
    url = redis_db_url(redis_url)
    await empty_redis(url)
    keys = make_keys()
    members: list[Member] = []
    try:
        first = start_process(base, 1, database_url, url, keys, **overrides)
        members.append(first)
        await started(first)  # it migrates the database; the others start together
        members.extend(start_process(base, i, database_url, url, keys, **overrides) for i in range(2, count + 1))
        await asyncio.gather(*(started(m) for m in members[1:]))
        yield members
    finally:
        for member in members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(member.proc.wait)
