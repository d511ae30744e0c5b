"""Shared fixtures.

- `settings`: Settings on a fresh tmp data dir (holding an empty, already-migrated SQLite database) with known
  default-client keys (`settings.secret_key`, `settings.publishable_key`) and the fake providers. Override
  this fixture in a test module to change it.
- `database_url`: parametrised over SQLite and PostgreSQL (a fresh database per test; PostgreSQL is skipped
  unless TALKWIRE_TEST_POSTGRES_URL is set — `eval "$(scripts/start_postgres.sh)"` sets it).
- `app` / `client`: the Starlette app with its lifespan running, and an httpx client calling it in-process.
- `live_server`: `talkwire serve`'s uvicorn on a real 127.0.0.1 port in a background thread (its own event
  loop, like a separate process); `live_server_factory(settings)` starts more (e.g. to test restarts).
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from control_api.app import create_app
from control_api.cli import bind_socket, make_server
from control_api.settings import Settings
from control_api.storage import Database
from cluster_fixtures import cluster_keys, redis_client, redis_url  # noqa: F401  (Redis fixtures, many workers)

# Every server a test starts runs its SIP user agent on a free UDP port, so test runs side by side never fight
# over 127.0.0.1:5060 (covers Settings() built in tests and `talkwire` subprocesses, which inherit it).
os.environ.setdefault("TALKWIRE_SIP_BIND", "127.0.0.1:0")


def make_keys() -> tuple[str, str]:
    """A (secret, publishable) key pair in Talkwire's formats, unique per call."""
    return "sk_live_test" + secrets.token_urlsafe(24), "pk_live_test" + secrets.token_urlsafe(24)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database already migrated to head, made once per session.

    Copying it is much faster than migrating a fresh file in every test; the result is the same empty
    schema (start-up still runs the migrations, which find nothing to do). Migration tests use fresh files.
    """
    path = tmp_path_factory.mktemp("sqlite-template") / "talkwire.db"

    async def migrate() -> None:
        db = await Database.open(f"sqlite+aiosqlite:///{path}")
        await db.close()

    asyncio.run(migrate())
    return path


@pytest.fixture
def settings(data_dir: Path, migrated_sqlite_template: Path) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_sqlite_template, data_dir / "talkwire.db")
    secret, publishable = make_keys()
    return Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=8080,
        secret_key=secret,
        publishable_key=publishable,
        providers="fake",
    )


# ---- databases -------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TALKWIRE_TEST_POSTGRES_URL")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                 database=url.database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    async with _fresh_postgres_database() as url:
        yield url


@asynccontextmanager
async def _fresh_postgres_database() -> AsyncIterator[str]:
    if not POSTGRES_URL:
        pytest.skip("TALKWIRE_TEST_POSTGRES_URL is not set (eval \"$(scripts/start_postgres.sh)\" to run these)")
    name = "tw_" + secrets.token_hex(6)
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, data_dir: Path) -> AsyncIterator[str]:
    """The database URL of one storage test, once per engine."""
    if request.param == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{data_dir / 'talkwire.db'}"
        return
    async with _fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open Database on `database_url` (once per engine), closed afterwards."""
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


# ---- the app in-process ------------------------------------------------------------------------------

@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """httpx client on the app, lifespan running (so app.state.runtime exists). No auth header set."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
def secret_headers(settings: Settings) -> dict[str, str]:
    return {"X-API-Key": settings.secret_key}


# ---- a real server -------------------------------------------------------------------------------------

@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    app: Starlette  # app.state.runtime belongs to the server's thread and loop: read, don't await on it

    @property
    def secret_key(self) -> str:
        return self.settings.secret_key

    @property
    def publishable_key(self) -> str:
        return self.settings.publishable_key


@contextmanager
def run_live_server(settings: Settings, *, startup_timeout: float = 60.0) -> Iterator[LiveServer]:
    """Run the server as `talkwire serve` does, on a free 127.0.0.1 port, until the block ends."""
    settings = settings.model_copy()
    sock = bind_socket(settings.host, 0)
    settings.port = sock.getsockname()[1]
    server = make_server(settings, log_level="warning")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name="talkwire-live-server", daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):
        if server.started:
            started.set()
        elif not thread.is_alive() or failure:
            sock.close()
            raise RuntimeError(f"live server failed to start: {failure[0] if failure else 'exited'}")
        startup_timeout -= 0.02
        if startup_timeout <= 0:
            server.should_exit = True
            raise TimeoutError("live server did not start")
    try:
        yield LiveServer(settings.base_url, settings, server.config.app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def live_server_factory() -> Callable[..., AbstractContextManager[LiveServer]]:
    return run_live_server


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with run_live_server(settings) as server:
        yield server
