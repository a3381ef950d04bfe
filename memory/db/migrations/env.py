"""Alembic's environment: run in-process by :mod:`plan2flow.memory.db.migrate`, which passes the
connection (one transaction for the whole run) and the application role."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

from plan2flow.memory.db import models  # noqa: F401  (the tables, on SQLModel.metadata)

target_metadata = SQLModel.metadata


def _record_revision(connection: sa.engine.Connection) -> None:
    """PostgreSQL: the revision also goes into the version table's comment, which the
    application role can read from the catalog (it may not read the table)."""
    if connection.dialect.name != "postgresql":
        return
    heads = context.get_context().get_current_heads()
    revision = ",".join(sorted(heads)).replace("'", "''")
    connection.execute(sa.text(f"COMMENT ON TABLE alembic_version IS '{revision}'"))


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the migrations with plan2flow.memory.db.migrate (plan2flow db)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
        _record_revision(connection)


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
