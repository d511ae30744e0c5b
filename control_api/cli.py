"""The `talkwire` command: run the server and manage clients (tenants) and API keys.

Every command reads the same `TALKWIRE_*` settings as the server; flags override them. Management
commands work directly on the database in the data directory (or TALKWIRE_DATABASE_URL), so they work
whether or not a server is running.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `talkwire --help` and `--version` stay instant
    import uvicorn

    from control_api.runtime import Runtime
    from control_api.settings import Settings
    from control_api.storage import Database
    from control_api.storage.clients import KeyKind


def talkwire_version() -> str:
    try:
        return version("talkwire")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def build_settings(args: argparse.Namespace, **fields: Any) -> Settings:
    """Settings from TALKWIRE_* env, with the flags that were actually given taking precedence."""
    from control_api.settings import Settings

    given = {"data_dir": args.data_dir, "database_url": args.database_url, **fields}
    return Settings(**{name: value for name, value in given.items() if value is not None})


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so port 0 resolves to a real port before the app is built."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def make_server(settings: Settings, *, log_level: str = "info",
                announce: Callable[[Runtime], None] | None = None) -> uvicorn.Server:
    """The app and a uvicorn server for it (one process, one event loop).

    With `announce`, the server passes it the opened Runtime (for the banner) once it is listening.
    """
    import uvicorn

    from control_api.app import create_app
    from control_api.http_guard import guarded_protocol

    class BannerServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if announce is not None and not self.should_exit:
                announce(app.state.runtime)

    app = create_app(settings)
    http = guarded_protocol(settings.http_header_timeout, settings.http_body_timeout)
    return BannerServer(uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False, http=http,
                                       limit_concurrency=settings.http_max_connections))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = build_settings(args, host=args.host, port=args.port, providers=args.providers,
                              public_url=args.public_url)
    from control_api.storage.clients import check_kind

    configured: tuple[tuple[KeyKind, str | None], ...] = (
        ("secret", settings.secret_key), ("publishable", settings.publishable_key))
    for kind, key in configured:
        if key:
            check_kind(key, kind)  # a clear error now rather than a failed start-up later
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    settings.port = sock.getsockname()[1]

    def announce(runtime: Runtime) -> None:
        print(json.dumps(runtime.banner_info()) if args.json else runtime.banner(), flush=True)

    server = make_server(settings, log_level=args.log_level, announce=announce)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is stopped: uvicorn has shut down cleanly
        pass
    return 0 if server.started else 1


# ---- management commands ---------------------------------------------------------------------------

def _with_db(args: argparse.Namespace, action: Callable[[Database], Awaitable[int]]) -> int:
    from control_api.storage import Database

    settings = build_settings(args)

    async def run() -> int:
        db = await Database.open(settings.effective_database_url)
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(run())


def _store():
    from control_api.storage import clients

    return clients


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data) if args.json else text)


def _fail(message: str) -> int:
    print(f"talkwire: error: {message}", file=sys.stderr)
    return 1


def cmd_clients_create(args: argparse.Namespace) -> int:
    async def action(db: Database) -> int:
        client = await _store().create_client(db, args.name)
        _emit(args, {"id": client.id, "name": client.name}, f"Created client {client.name}: {client.id}")
        return 0

    return _with_db(args, action)


def cmd_clients_list(args: argparse.Namespace) -> int:
    async def action(db: Database) -> int:
        rows = await _store().list_clients(db)
        data = [{"id": c.id, "name": c.name, "is_default": c.is_default, "created_at": c.created_at.isoformat()}
                for c in rows]
        text = "\n".join(f"{c.id}  {c.name}{'  (default)' if c.is_default else ''}" for c in rows) or "No clients."
        _emit(args, data, text)
        return 0

    return _with_db(args, action)


def cmd_keys_create(args: argparse.Namespace) -> int:
    origins = [o.strip() for o in args.origins.split(",") if o.strip()] if args.origins else None

    async def action(db: Database) -> int:
        if await _store().get_client(db, args.client) is None:
            return _fail(f"no client with id {args.client}")
        created = await _store().add_key(db, args.client, args.kind, origins=origins, label=args.label)
        data = {"id": created.id, "key": created.key, "kind": created.kind, "client_id": created.client_id}
        note = "" if args.kind == "publishable" else "\nStore it now: only its hash is kept."
        _emit(args, data, f"Created {args.kind} key {created.id}:\n{created.key}{note}")
        return 0

    return _with_db(args, action)


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def action(db: Database) -> int:
        rows = await _store().list_keys(db, args.client)
        data = [{
            "id": k.id, "client_id": k.client_id, "kind": k.kind, "prefix": k.prefix,
            "allowed_origins": k.allowed_origins, "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        } for k in rows]
        text = "\n".join(
            f"{k.id}  {k.kind:<11} {k.prefix}…  client {k.client_id}{'  REVOKED' if k.revoked_at else ''}"
            for k in rows
        ) or "No keys."
        _emit(args, data, text)
        return 0

    return _with_db(args, action)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def action(db: Database) -> int:
        row = await _store().revoke_key(db, args.key_id)
        if row is None:
            return _fail(f"no key with id {args.key_id}")
        _emit(args, {"id": row.id, "revoked_at": row.revoked_at.isoformat()}, f"Revoked key {row.id}")
        return 0

    return _with_db(args, action)


def cmd_loadtest(args: argparse.Namespace) -> int:
    """`talkwire loadtest`: hands over to the load tester (the `loadtest` package, a client of this server)."""
    from loadtest.cli import main as loadtest_main

    return loadtest_main(args.argv)


# ---- argument parsing ------------------------------------------------------------------------------

def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="data directory holding the SQLite database and recordings "
                             "(default: $TALKWIRE_DATA_DIR or ./data)")
    common.add_argument("--database-url", default=None,
                        help="SQLAlchemy async URL, e.g. postgresql+asyncpg://user:pw@host/db "
                             "(default: $TALKWIRE_DATABASE_URL or SQLite in the data directory)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="talkwire",
        description="Talkwire: a self-hostable real-time voice-agent server. "
                    "Settings come from TALKWIRE_* environment variables; flags override them.",
    )
    parser.add_argument("--version", action="version", version=f"talkwire {talkwire_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the server (API, WebRTC, SIP, demo page)",
                                description="Run Talkwire in one process. Creates the database and the default "
                                            "client on first start and prints the demo URL and keys.")
    serve.add_argument("--host", default=None, help="address to listen on (default: $TALKWIRE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None,
                       help="TCP port (default: $TALKWIRE_PORT or 8080; 0 picks a free port)")
    serve.add_argument("--providers", choices=["local", "fake"], default=None,
                       help="local: embedded offline models; fake: instant test doubles (default: local)")
    serve.add_argument("--public-url", default=None,
                       help="base URL clients reach this server at (default: http://HOST:PORT)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    clients = commands.add_parser("clients", help="manage clients (tenants)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = clients.add_parser("create", parents=[common], help="create a client")
    create.add_argument("name", help="display name of the client")
    create.set_defaults(func=cmd_clients_create)
    listing = clients.add_parser("list", parents=[common], help="list clients")
    listing.set_defaults(func=cmd_clients_list)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    kcreate = keys.add_parser("create", parents=[common], help="create an API key (printed once)",
                              description="Create a key. Secret keys (sk_live_…) can do everything; publishable "
                                          "keys (pk_live_…) only start web calls from browsers.")
    kcreate.add_argument("--client", required=True, help="id of the owning client")
    kcreate.add_argument("--kind", required=True, choices=["secret", "publishable"])
    kcreate.add_argument("--origins", default=None,
                         help="comma-separated origins allowed to use a publishable key, "
                              "e.g. https://shop.example,https://www.shop.example (default: *)")
    kcreate.add_argument("--label", default=None, help="a note to recognise the key by")
    kcreate.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", parents=[common], help="list keys (prefixes only)")
    klist.add_argument("--client", default=None, help="only this client's keys")
    klist.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key: it stops working at once")
    revoke.add_argument("key_id", help="id of the key (from keys create / keys list)")
    revoke.set_defaults(func=cmd_keys_revoke)

    # The load tester is a client of the server with its own parser: everything after `loadtest` goes to it.
    loadtest = commands.add_parser("loadtest", add_help=False, prefix_chars="\0",
                                   help="load a server with synthetic web callers and report latencies and capacity")
    loadtest.add_argument("argv", nargs=argparse.REMAINDER)
    loadtest.set_defaults(func=cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # KeyRejected and other bad input the commands report
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
