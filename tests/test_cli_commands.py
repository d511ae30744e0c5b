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

from control_api.cli import main
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


def test_loadtest_is_handed_over_to_the_load_tester_with_its_own_flags():
    """`talkwire loadtest` belongs to the `loadtest` package (a client of the server); the server lists it and
    passes everything after the word on, so its help, flags and argparse errors are the load tester's."""
    assert "loadtest" in talkwire("--help").stdout
    result = talkwire("loadtest", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: talkwire loadtest [-h] [--calls CALLS]")
    for flag in ("--ramp-repeat", "--baseline", "--leg {web,sip,sip-in}", "--against URL", "--max-frame-lag-ms"):
        assert flag in result.stdout
    result = talkwire("loadtest", "--calls", "x")
    assert result.returncode == 2 and "talkwire loadtest: error: argument --calls: invalid int value" in result.stderr


def test_loadtest_without_its_extra_says_how_to_install_it(capsys, monkeypatch):
    import loadtest.cli

    monkeypatch.setattr(loadtest.cli, "EXTRA", ("rich", "talkwire_no_such_module"))
    assert main(["loadtest", "--calls", "1"]) == 1
    err = capsys.readouterr().err
    assert err == ("talkwire: error: the load tester needs talkwire_no_such_module: "
                   "pip install 'talkwire[loadtest]'\n")


async def test_clients_and_keys_with_json(tmp_path: Path):
    data = tmp_path / "data"
    common = ("--data-dir", str(data))
    client = talkwire_json("clients", "create", "Acme Corp", *common)
    assert set(client) == {"id", "name"} and client["name"] == "Acme Corp"

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

    revoked = talkwire_json("keys", "revoke", secret["id"], *common)
    assert revoked["id"] == secret["id"] and revoked["revoked_at"]
    assert (await stored_key(data, secret["key"])).revoked_at is not None


# The rest calls the same entry point in-process (each subprocess pays the interpreter's imports again).

def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_listing_errors_and_human_output(tmp_path: Path, capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith("TALKWIRE_")]:
        monkeypatch.delenv(name)
    common = ("--data-dir", str(tmp_path / "data"))
    code, out, _ = cli(capsys, "clients", "create", "Beta", *common)
    assert code == 0 and out.startswith("Created client Beta: ")
    client_id = out.strip().rsplit(" ", 1)[1]
    code, out, _ = cli(capsys, "clients", "list", "--json", *common)
    assert [c["id"] for c in json.loads(out)] == [client_id]
    code, out, _ = cli(capsys, "keys", "create", "--client", client_id, "--kind", "secret", *common)
    key = re.search(r"sk_live_\S+", out).group(0)
    assert code == 0 and "only its hash is kept" in out
    code, out, _ = cli(capsys, "keys", "list", "--json", "--client", client_id, *common)
    listed = json.loads(out)
    assert len(listed) == 1 and listed[0]["prefix"] == key[:12] and key not in out

    code, out, err = cli(capsys, "keys", "create", "--client", "no-such-client", "--kind", "secret", *common)
    assert code == 1 and "no client" in err and not out
    code, out, err = cli(capsys, "keys", "revoke", "no-such-key", *common)
    assert code == 1 and "no key" in err and not out


def test_data_dir_from_env_and_flag_overrides_it(tmp_path: Path, capsys, monkeypatch):
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    monkeypatch.setenv("TALKWIRE_DATA_DIR", str(env_dir))
    monkeypatch.delenv("TALKWIRE_DATABASE_URL", raising=False)
    code, out, _ = cli(capsys, "clients", "create", "EnvClient", "--json")
    in_env = json.loads(out)
    assert code == 0 and (env_dir / "talkwire.db").exists()
    code, out, _ = cli(capsys, "clients", "list", "--json", "--data-dir", str(flag_dir))
    assert json.loads(out) == []
    code, out, _ = cli(capsys, "clients", "list")
    assert in_env["id"] in out and "EnvClient" in out


@pytest.mark.parametrize("kind, bad", [("secret", "pk_live_abc"), ("publishable", "sk_live_abc")])
def test_serve_rejects_a_configured_key_of_the_wrong_kind(tmp_path: Path, capsys, monkeypatch, kind, bad):
    monkeypatch.setenv(f"TALKWIRE_{kind.upper()}_KEY", bad)
    code, out, err = cli(capsys, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert code == 1 and f"a {kind} key must start with" in err and not out


async def _serve_until_banner(data: Path, *flags: str) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(
        str(TALKWIRE_BIN), "serve", "--port", "0", "--providers", "fake", "--data-dir", str(data),
        "--log-level", "warning", *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env(),
    )
    banner: dict = {}
    output = []
    while "Secret key" not in banner:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        if not line:
            raise AssertionError("serve exited before printing its banner:\n" + "".join(output))
        output.append(line)
        if line.startswith("{"):
            return proc, json.loads(line)
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
    proc, again = await _serve_until_banner(data, "--json")
    try:
        assert again["publishable_key"] == banner["Publishable key"]
        assert again["secret_key"] is None  # stored hashed: never shown again
        async with httpx.AsyncClient(base_url=again["url"], timeout=30) as http:
            assert (await http.get("/assistant", headers={"X-API-Key": secret})).status_code == 200
    finally:
        assert await _stop(proc) == 0


def test_keys_managed_by_the_cli_apply_to_a_running_server(live_server, settings, capsys):
    data = ("--data-dir", str(settings.data_dir))
    client = json.loads(cli(capsys, "clients", "create", "Live Co", "--json", *data)[1])
    key = json.loads(cli(capsys, "keys", "create", "--client", client["id"], "--kind", "secret", "--json", *data)[1])
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/assistant", headers={"X-API-Key": key["key"]}).status_code == 200
        assert cli(capsys, "keys", "revoke", key["id"], *data)[0] == 0
        response = http.get("/assistant", headers={"Authorization": f"Bearer {key['key']}"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_API_KEY"
        assert http.get("/assistant", headers={"X-API-Key": live_server.secret_key}).status_code == 200
