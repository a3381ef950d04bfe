"""Databases for the audit journal's tests: a migrated SQLite file of the test's own with the
tenants it needs, appends, and raw SQL that goes around the application (the tampering)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plan2flow.memory import audit
from plan2flow.memory.audit_chain import ChainWalk
from plan2flow.memory.db.engine import Database, configured_database
from plan2flow.memory.db.models import AuditEntry, Tenant
from plan2flow.memory.settings import memory_settings

TENANTS = ("acme", "globex")


def sqlite_database(home: Path, tenants: tuple[str, ...] = TENANTS) -> Database:
    """The SQLite database of a fresh PLAN2FLOW_HOME, migrated, with `tenants` besides
    ``default``."""
    database = configured_database(memory_settings({"PLAN2FLOW_HOME": str(home)}))
    with database.connect() as connection:
        for name in tenants:
            connection.execute(sa.insert(Tenant).values(**Tenant(name=name).model_dump()))
        connection.commit()
    return database


def append_many(database: Database, tenant: str, count: int, start: int = 0) -> None:
    """`count` entries in one transaction, with a detail that says which they are."""
    with database.session(tenant) as session:
        for index in range(start, start + count):
            audit.append(
                session,
                tenant,
                "ada",
                "task.completed",
                f"etl/t{index}",
                {"index": index, "ratio": index / 7, "tags": ["x", "é"]},
            )


def rows(database: Database, tenant: str) -> list[AuditEntry]:
    with database.session(tenant) as session:
        return list(audit.entries(session, tenant))


def raw(database: Database, sql: str, **params: Any) -> int:
    """Run `sql` around the application (SQLite: the file itself); the rows it touched."""
    with database.connect() as connection:
        done = connection.execute(sa.text(sql), params)
        connection.commit()
        return int(done.rowcount)


def verify(database: Database, tenant: str) -> ChainWalk:
    with database.session(tenant) as session:
        return audit.verify(session, tenant)
