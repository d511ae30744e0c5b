"""Alembic environment. Talkwire runs migrations in code on a live connection (see control_api.storage):
`config.attributes["connection"]`. Run by hand, `sqlalchemy.url` must be a synchronous URL.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from control_api.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
