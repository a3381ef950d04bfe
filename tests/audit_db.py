"""Databases for the audit journal's tests, SQLite and PostgreSQL alike: two tenants of the
test's own, appends, and raw SQL that goes around the application (the tampering: the SQLite
file itself, PostgreSQL's superuser)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from plan2flow.memory import audit
from plan2flow.memory.audit_chain import ChainWalk
from plan2flow.memory.db.engine import Database, configured_database, engine_url, open_database
from plan2flow.memory.db.models import AuditEntry, Tenant
from plan2flow.memory.settings import memory_settings

DIALECTS = ("sqlite", "postgresql")


@dataclass
class Journal:
    """A migrated database, as the application sees it, with tenants `acme` and `globex`."""

    database: Database
    acme: str
    globex: str
    home: Path
    environ: dict[str, str]
    """The environment of a command line using this database (tenant: `acme`)."""
    raw_url: str

    @property
    def dialect(self) -> str:
        return self.database.dialect

    def append_many(self, tenant: str, count: int, start: int = 0) -> None:
        """`count` entries in one transaction, with a detail that says which they are."""
        with self.database.session(tenant) as session:
            for index in range(start, start + count):
                audit.append(
                    session,
                    tenant,
                    "ada",
                    "task.completed",
                    f"etl/t{index}",
                    {"index": index, "ratio": index / 7, "tags": ["x", "é"]},
                )

    def rows(self, tenant: str) -> list[AuditEntry]:
        with self.database.session(tenant) as session:
            return list(audit.entries(session, tenant))

    def verify(self, tenant: str) -> ChainWalk:
        with self.database.session(tenant) as session:
            return audit.verify(session, tenant)

    def raw(self, sql: str, **params: Any) -> int:
        """Run `sql` around the application; the rows it touched."""
        engine = sa.create_engine(engine_url(self.raw_url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                return int(connection.execute(sa.text(sql), params).rowcount)
        finally:
            engine.dispose()

    def insert_raw(self, **values: Any) -> None:
        """Insert an audit entry around the application."""
        engine = sa.create_engine(engine_url(self.raw_url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(sa.insert(AuditEntry).values(**values))
        finally:
            engine.dispose()


def sqlite_journal(home: Path) -> Journal:
    """The SQLite database of a fresh PLAN2FLOW_HOME with tenants `acme` and `globex`."""
    database = configured_database(memory_settings({"PLAN2FLOW_HOME": str(home)}))
    with database.connect() as connection:
        for name in ("acme", "globex"):
            connection.execute(sa.insert(Tenant).values(**Tenant(name=name).model_dump()))
        connection.commit()
    url = database.engine.url.render_as_string(hide_password=False)
    environ = {"PLAN2FLOW_HOME": str(home), "PLAN2FLOW_TENANT": "acme"}
    return Journal(database, "acme", "globex", home, environ, url)


def postgres_journal(pg: Any, home: Path) -> Journal:
    """The session's PostgreSQL database as the application role, with two new tenants."""
    from memory_pg import HOST, PORT, SUPERUSER, create_tenants, unique_tenant

    acme, globex = unique_tenant("acme"), unique_tenant("globex")
    create_tenants(pg, acme, globex)
    environ = {**pg.environ(home), "PLAN2FLOW_TENANT": acme}
    superuser = f"postgresql://{SUPERUSER}@{HOST}:{PORT}/{pg.database}"
    return Journal(open_database(pg.app_url()), acme, globex, home, environ, superuser)


@pytest.fixture(params=DIALECTS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    home = tmp_path / "home"
    if request.param == "sqlite":
        made = sqlite_journal(home)
    else:
        made = postgres_journal(request.getfixturevalue("memory_postgres"), home)
    try:
        yield made
    finally:
        made.database.dispose()


@pytest.fixture
def pg_journal(memory_postgres: Any, tmp_path: Path) -> Iterator[Journal]:
    """The journal on PostgreSQL only: for what SQLite has no equivalent of (roles)."""
    made = postgres_journal(memory_postgres, tmp_path / "home")
    try:
        yield made
    finally:
        made.database.dispose()
