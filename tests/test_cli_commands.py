"""The `talkwire` console script, run as a subprocess: management commands, settings precedence, serve."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from control_api.storage import Database
from control_api.storage.clients import find_key, hash_key

TALKWIRE_BIN = Path(sys.executable).with_name("talkwire")  # the console script of this environment


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKWIRE_")}
    env.update(extra)
    return env


def talkwire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    assert TALKWIRE_BIN.exists(), f"{TALKWIRE_BIN} is missing: install the project (scripts/install.sh)"
    return subprocess.run([str(TALKWIRE_BIN), *args], capture_output=True, text=True, timeout=120,
                          env=env or clean_env())


def talkwire_json(*args: str, env: dict[str, str] | None = None):
    result = talkwire(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def stored_key(data_dir: Path, key: str):
    db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'talkwire.db'}")
    try:
        return await find_key(db, key)
    finally:
        await db.close()


def test_version_and_help():
    result = talkwire("--version")
    assert result.returncode == 0 and re.fullmatch(r"talkwire \S+\n", result.stdout)
    result = talkwire("--help")
    assert result.returncode == 0
    for word in ("serve", "clients", "keys", "TALKWIRE_"):
        assert word in result.stdout
    result = talkwire("keys", "create", "--help")
    assert result.returncode == 0 and "--origins" in result.stdout and "--data-dir" in result.stdout
    assert talkwire("keys", "create", "--client", "x").returncode == 2  # --kind is required: argparse error


async def test_clients_and_keys_with_json(tmp_path: Path):
    data = tmp_path / "data"
    common = ("--data-dir", str(data))
    client = talkwire_json("clients", "create", "Acme Corp", *common)
    assert set(client) == {"id", "name"} and client["name"] == "Acme Corp"
    listed = talkwire_json("clients", "list", *common)
    assert [c["id"] for c in listed] == [client["id"]]

    secret = talkwire_json("keys", "create", "--client", client["id"], "--kind", "secret", *common)
    assert set(secret) == {"id", "key", "kind", "client_id"}
    assert secret["kind"] == "secret" and secret["client_id"] == client["id"]
    assert secret["key"].startswith("sk_live_") and len(secret["key"]) >= 40
    publishable = talkwire_json("keys", "create", "--client", client["id"], "--kind", "publishable",
                                "--origins", "https://a.example, https://b.example", *common)
    assert publishable["key"].startswith("pk_live_")

    row = await stored_key(data, secret["key"])
    assert row.id == secret["id"] and row.key_hash == hash_key(secret["key"]) and row.display_key is None
    assert (await stored_key(data, publishable["key"])).allowed_origins == ["https://a.example", "https://b.example"]
    assert secret["key"].encode() not in (data / "talkwire.db").read_bytes()

    keys = talkwire_json("keys", "list", "--client", client["id"], *common)
    assert {k["id"] for k in keys} == {secret["id"], publishable["id"]}
    assert all(secret["key"] not in json.dumps(k) for k in keys)

    revoked = talkwire_json("keys", "revoke", secret["id"], *common)
    assert revoked["id"] == secret["id"] and revoked["revoked_at"]
    assert (await stored_key(data, secret["key"])).revoked_at is not None

    missing = talkwire("keys", "create", "--client", "no-such-client", "--kind", "secret", *common)
    assert missing.returncode == 1 and "no client" in missing.stderr
    missing = talkwire("keys", "revoke", "no-such-key", *common)  # human output, not JSON
    assert missing.returncode == 1 and "no key" in missing.stderr and not missing.stdout


def test_data_dir_from_env_and_flag_overrides_it(tmp_path: Path):
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    env = clean_env(TALKWIRE_DATA_DIR=str(env_dir))
    in_env = talkwire_json("clients", "create", "EnvClient", env=env)
    assert talkwire_json("clients", "list", "--data-dir", str(flag_dir), env=env) == []
    listed = talkwire("clients", "list", env=env)  # human output
    assert listed.returncode == 0 and in_env["id"] in listed.stdout and "EnvClient" in listed.stdout


async def _serve_until_banner(data: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        str(TALKWIRE_BIN), "serve", "--port", "0", "--providers", "fake", "--data-dir", str(data),
        "--log-level", "warning", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env(),
    )
    banner: dict[str, str] = {}
    output = []
    while "Secret key" not in banner:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        if not line:
            raise AssertionError("serve exited before printing its banner:\n" + "".join(output))
        output.append(line)
        if ":" in line and line.startswith("  "):
            name, _, value = line.strip().partition(":")
            banner[name] = value.strip()
    return proc, banner


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGINT)
    return await asyncio.wait_for(proc.wait(), 60)


async def test_serve_prints_keys_once_and_keeps_them_across_restarts(tmp_path: Path):
    data = tmp_path / "data"
    proc, banner = await _serve_until_banner(data)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", banner["Demo page"])
        assert not banner["Demo page"].endswith(":0/")
        assert banner["Publishable key"].startswith("pk_live_")
        secret = banner["Secret key"]
        assert secret.startswith("sk_live_")
        async with httpx.AsyncClient(base_url=banner["Demo page"], timeout=30) as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.get("/assistant", headers={"X-API-Key": secret})).status_code == 200
    finally:
        assert await _stop(proc) == 0
    proc, again = await _serve_until_banner(data)
    try:
        assert again["Publishable key"] == banner["Publishable key"]
        assert not again["Secret key"].startswith("sk_live_")  # stored hashed: never shown again
        async with httpx.AsyncClient(base_url=again["Demo page"], timeout=30) as http:
            assert (await http.get("/assistant", headers={"X-API-Key": secret})).status_code == 200
    finally:
        assert await _stop(proc) == 0


def test_keys_managed_by_the_cli_apply_to_a_running_server(live_server, settings):
    data = ("--data-dir", str(settings.data_dir))
    client = talkwire_json("clients", "create", "Live Co", *data)
    key = talkwire_json("keys", "create", "--client", client["id"], "--kind", "secret", *data)
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/assistant", headers={"X-API-Key": key["key"]}).status_code == 200
        talkwire_json("keys", "revoke", key["id"], *data)
        response = http.get("/assistant", headers={"Authorization": f"Bearer {key['key']}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_API_KEY"
        assert http.get("/assistant", headers={"X-API-Key": live_server.secret_key}).status_code == 200


@pytest.mark.parametrize("kind, bad", [("secret", "pk_live_abc"), ("publishable", "sk_live_abc")])
def test_serve_rejects_a_configured_key_of_the_wrong_kind(tmp_path: Path, kind: str, bad: str):
    env = clean_env(**{f"TALKWIRE_{kind.upper()}_KEY": bad})
    result = subprocess.run([str(TALKWIRE_BIN), "serve", "--port", "0", "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    assert f"a {kind} key must start with" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
