"""The metadata database's migrations: upgrade, downgrade and upgrade again on SQLite and on
PostgreSQL, where the second revision turns row-level security on and grants the application
role exactly what it may do, and the third and fourth add the escalation records, the cost
ledger and budgets under the same rules;
the tables they make are the models' tables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from memory_pg import MemoryPostgres, superuser_connection
from sqlmodel import SQLModel

from plan2flow.memory.db import migrate
from plan2flow.memory.db.models import TENANT_TABLES

TABLES = {"tenants", *TENANT_TABLES}
FIRST_TABLES = {"tenants", "runs", "artifacts", "audit_entries"}
"""The tables of revisions 1 and 2; revision 3 adds escalations, revision 4 costs and budgets."""
COMMANDS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
APP_GRANTS = {
    ("tenants", "SELECT"),
    *((table, command) for table in ("runs", "artifacts") for command in COMMANDS),
    ("audit_entries", "SELECT"),
    ("audit_entries", "INSERT"),
    ("escalations", "SELECT"),
    ("escalations", "INSERT"),
    ("costs", "SELECT"),
    ("costs", "INSERT"),
    *(("budgets", command) for command in COMMANDS),
}
LATER_TABLES = {"escalations", "costs", "budgets"}
REVISIONS = [
    "0001_tables",
    "0002_tenant_isolation",
    "0003_escalations",
    "0004_costs_budgets",
    "0005_tenant_hosts",
]


def test_history_lists_the_revisions_oldest_first() -> None:
    revisions = migrate.history()
    assert [r.id for r in revisions] == REVISIONS
    assert [r.parent for r in revisions] == [None, *REVISIONS[:-1]]
    assert [r.is_head for r in revisions] == [False] * (len(REVISIONS) - 1) + [True]
    assert migrate.head() == REVISIONS[-1]
    assert all(r.message for r in revisions)


def test_the_head_read_without_alembic_is_alembics_head() -> None:
    """Opening project memory compares the database with `revision.HEAD` and imports no
    Alembic: a new migration must move it, or the database would never be migrated to it."""
    from plan2flow.memory.db import revision

    assert migrate.head() == revision.HEAD


def test_only_a_database_behind_the_head_imports_alembic(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from plan2flow.memory.db.engine import configured_database\n"
        "configured_database().dispose()\n"
        "print('alembic' in sys.modules)\n"
    )
    env = {**os.environ, "PLAN2FLOW_HOME": str(tmp_path)}
    env.pop("PLAN2FLOW_DATABASE_URL", None)

    def alembic_imported() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert alembic_imported() == "True"  # a new database: migrated
    assert alembic_imported() == "False"  # at the head: opened without Alembic


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _differences(url: str) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_sqlite_upgrades_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/memory.db"
    assert migrate.current(f"sqlite:///{tmp_path}/memory.db") is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert _tables(url) == TABLES
    assert _differences(url) == []
    migrate.downgrade(url, "0002_tenant_isolation")
    assert migrate.current(url) == "0002_tenant_isolation"
    assert _tables(url) == FIRST_TABLES
    migrate.downgrade(url, "0001_tables")  # nothing to undo on SQLite
    assert migrate.current(url) == "0001_tables"
    assert _tables(url) == FIRST_TABLES
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _tables(url) == set()
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert _differences(url) == []


def _isolation(pg: MemoryPostgres, database: str) -> dict[str, Any]:
    """Row-level security, policies, CHECKs and the application role's grants, as a superuser
    reads them from the catalog."""
    with superuser_connection(database) as c:
        rls = c.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            (list(TENANT_TABLES),),
        ).fetchall()
        policies = c.execute("SELECT tablename, cmd, qual, with_check FROM pg_policies").fetchall()
        checks = c.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
        ).fetchall()
        grants = c.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %s",
            (pg.app,),
        ).fetchall()
        version_acl = c.execute(
            "SELECT has_table_privilege(%s, 'alembic_version', 'SELECT,INSERT,UPDATE,DELETE')",
            (pg.app,),
        ).fetchone()
    return {
        "rls": {name: (enabled, forced) for name, enabled, forced in rls if enabled or forced},
        "policies": policies,
        "checks": sorted(checks),
        "grants": set(grants),
        "app_on_alembic_version": version_acl[0] if version_acl else None,
    }


@pytest.fixture
def pg_database(memory_postgres: MemoryPostgres) -> Iterator[str]:
    """A database of this test's own (the session's roles), not migrated."""
    name = memory_postgres.create_database("_migrations")
    yield name
    memory_postgres.drop_database(name)


@pytest.mark.slow
def test_postgresql_upgrades_downgrades_and_upgrades_again(
    memory_postgres: MemoryPostgres, pg_database: str
) -> None:
    pg, admin = memory_postgres, memory_postgres.admin_url(pg_database)
    assert migrate.current(admin) is None
    for round in (1, 2):
        migrate.upgrade(admin, app_role=pg.app)
        assert migrate.current(admin) == migrate.head(), round
        assert migrate.current(pg.app_url(pg_database)) == migrate.head()
        assert _tables(admin) == TABLES
        assert _differences(admin) == []
        state = _isolation(pg, pg_database)
        assert state["rls"] == {table: (True, True) for table in TENANT_TABLES}
        assert sorted((t, cmd) for t, cmd, _, _ in state["policies"]) == sorted(
            (t, cmd) for t in TENANT_TABLES for cmd in COMMANDS
        )
        for _, command, using, check in state["policies"]:
            tenant = "NULLIF(current_setting('plan2flow.tenant'::text, true), ''::text)"
            expressions = {
                "SELECT": [using],
                "DELETE": [using],
                "INSERT": [check],
                "UPDATE": [using, check],
            }[command]
            assert all(e == f"((tenant)::text = {tenant})" for e in expressions), command
        assert [table for table, _ in state["checks"]] == sorted(TENANT_TABLES)
        assert all("<> ''" in definition for _, definition in state["checks"])
        assert state["grants"] == APP_GRANTS
        assert state["app_on_alembic_version"] is False

        migrate.downgrade(admin, "0002_tenant_isolation")
        assert migrate.current(admin) == "0002_tenant_isolation"
        assert _tables(admin) == FIRST_TABLES
        before = _isolation(pg, pg_database)
        assert set(before["rls"]) == FIRST_TABLES - {"tenants"}
        assert {t for t, _, _, _ in before["policies"]} == FIRST_TABLES - {"tenants"}
        assert before["grants"] == {g for g in APP_GRANTS if g[0] not in LATER_TABLES}

        migrate.downgrade(admin, "0001_tables")
        assert migrate.current(admin) == "0001_tables"
        assert _tables(admin) == FIRST_TABLES
        undone = _isolation(pg, pg_database)
        assert (undone["rls"], undone["policies"], undone["checks"]) == ({}, [], [])
        assert undone["grants"] == set()

        migrate.downgrade(admin, "base")
        assert migrate.current(admin) is None
        assert _tables(admin) == set()


def test_without_an_application_role_nothing_is_granted(
    memory_postgres: MemoryPostgres, pg_database: str
) -> None:
    """One role for both (PLAN2FLOW_DATABASE_ADMIN_URL unset): it owns the tables, and FORCE
    still filters it by tenant."""
    migrate.upgrade(memory_postgres.admin_url(pg_database), app_role=memory_postgres.migrator)
    state = _isolation(memory_postgres, pg_database)
    assert state["grants"] == set()
    assert state["rls"] == {table: (True, True) for table in TENANT_TABLES}


def test_migration_errors_are_project_memory_errors(
    memory_postgres: MemoryPostgres, pg_database: str, tmp_path: Path
) -> None:
    from plan2flow.memory.errors import DatabaseUnavailable, MemoryStoreError

    with pytest.raises(MemoryStoreError, match="no-such-role"):
        migrate.upgrade(memory_postgres.admin_url(pg_database), app_role="no-such-role")
    assert migrate.current(memory_postgres.admin_url(pg_database)) is None  # all or nothing
    with pytest.raises(MemoryStoreError, match="no-such-revision"):
        migrate.upgrade(f"sqlite:///{tmp_path}/m.db", "no-such-revision")
    with pytest.raises(DatabaseUnavailable, match=r"\*\*\*"):
        migrate.upgrade("postgresql://m:secret-pw@127.0.0.1:1/x")
