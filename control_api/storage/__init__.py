"""Storage: one async SQLAlchemy engine on SQLite (embedded default) or PostgreSQL, migrated on open.

    db = await Database.open(settings.effective_database_url)
    async with db.session() as session:      # one short transaction; commits on success
        session.add(...)
    await db.close()

Every query lives in a repository module here, one per resource (`agents`, `tools`, `phone_numbers`,
`sip_trunks`, `campaigns`, `leads`, `calls`, `clients`); `owned` reads and changes single rows only through
their client. Routes and the call runtime call these functions, never `db.session()` themselves.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configured in code (no ini file): the packaged migrations, optionally on a live connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _sqlite_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")  # wait for another writer (other calls, the CLI) instead of failing
    cursor.close()
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below


def _sqlite_begin(connection) -> None:
    # Take the write lock when the transaction starts. A deferred transaction that reads and then writes
    # (read max(seq), insert) fails at once with "database is locked" when another connection wrote in
    # between; an immediate one waits its turn under busy_timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time, and every transaction here takes the write lock (BEGIN IMMEDIATE).
        # Many connections racing for it under busy_timeout lost writes when the process was saturated: the
        # holder's commit waited for the busy event loop while the others' 10 s ran out ("database is locked",
        # 39 transcript turns lost at 28 web calls on one core). One in-process queue (this lock, FIFO) hands the
        # database to one transaction at a time with no deadline; busy_timeout still covers other processes.
        self._one_writer: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url)
            event.listen(engine.sync_engine, "connect", _sqlite_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        else:
            engine = create_async_engine(url, pool_pre_ping=True)
        db = cls(engine)
        if migrate:
            try:
                await db.migrate()
            except BaseException:
                await engine.dispose()
                raise
        return db

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        if self._one_writer is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self._one_writer, self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
