"""Tenants isolated by PostgreSQL itself: as the application role (non-owner, NOBYPASSRLS),
tenant A can neither read, update, delete nor insert tenant B's rows, whatever SQL it sends;
no tenant outlives a pooled connection's use. The attacks of SERVICES_NOTES.md B2, on the
migrations' own policies and grants, with roles made by deploy/postgres/roles.sql."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from memory_pg import MemoryPostgres, create_tenants, unique_tenant
from psycopg import errors as pg_errors
from sqlmodel import select

from plan2flow.memory.db.engine import Database, open_database
from plan2flow.memory.db.models import TENANT_TABLES, AuditEntry, Run
from plan2flow.memory.errors import TenantError

INSERT = {
    "runs": "INSERT INTO runs (id, tenant, plan, graph_hash, state, actor, started) "
    "VALUES (%(id)s, %(tenant)s, 'p', 'h', 'running', 'me', now())",
    "artifacts": "INSERT INTO artifacts (id, tenant, name, kind, media_type, size, digest, "
    "content_digest, plan, task_id, graph_hash, labels, sensitive, created) VALUES (%(id)s, "
    "%(tenant)s, 'a', 'file', 'text/plain', 1, 'd', 'd', 'p', 't', 'h', '{}', false, now())",
    "audit_entries": "INSERT INTO audit_entries (id, tenant, seq, time, actor, action, subject, "
    "detail, prev_hash, hash) VALUES (%(id)s, %(tenant)s, %(seq)s, now(), 'me', 'x', 's', '{}', "
    "'p', 'h')",
    "escalations": "INSERT INTO escalations (id, tenant, plan, run_id, task_id, outcome, "
    "tier_reached, reason, threshold, variants, prompt_tokens, completion_tokens, cost_usd, "
    "estimated, redactions, seconds, created) VALUES (%(id)s, %(tenant)s, 'p', 'r', 't', 'kept', "
    "'remote', 'why', 0.8, '[]', 1, 1, 0.0, false, '{}', 1.0, now())",
    "costs": "INSERT INTO costs (id, tenant, plan, run_id, task_id, attempt, kind, seconds, usd, "
    "created) VALUES (%(id)s, %(tenant)s, 'p', 'r', 't', 1, 'compute', 1.0, 0.0, now())",
    "budgets": "INSERT INTO budgets (id, tenant, scope, name, usd, period, actor, updated) "
    "VALUES (%(id)s, %(tenant)s, 'plan', %(id)s::text, 1.0, 'month', 'me', now())",
}
EDITABLE = ("runs", "artifacts", "budgets")  # the others are journals: insert and read
JOURNALS = ("audit_entries", "escalations", "costs")
EDITED = {
    "runs": ("plan", "p", "x"),
    "artifacts": ("plan", "p", "x"),
    "budgets": ("period", "month", "day"),
}
"""The column the update tests change: its value as inserted, and the one they set (valid
values: other tests read the session's database, budgets too)."""
_seq = itertools.count(1)


@dataclass
class Seeded:
    pg: MemoryPostgres
    a: str
    b: str
    ids: dict[tuple[str, str], list[uuid.UUID]]  # (table, tenant) -> ids

    def app(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.pg.dsn(self.pg.app))

    def query(self, bound: str | None, sql: str, /, **params: Any) -> list[tuple[Any, ...]]:
        """`sql` as the application role in one transaction bound to `bound` (None: unset)."""
        with self.app() as connection:
            bind(connection, bound)
            return connection.execute(sql, {"a": self.a, "b": self.b, **params}).fetchall()

    def execute(self, bound: str | None, sql: str, /, **params: Any) -> int:
        with self.app() as connection:
            bind(connection, bound)
            return connection.execute(sql, {"a": self.a, "b": self.b, **params}).rowcount

    def tenants_seen(self, bound: str | None, sql: str, /, **params: Any) -> list[str]:
        return sorted(row[0] for row in self.query(bound, sql, **params))


def bind(connection: psycopg.Connection[Any], tenant: str | None) -> None:
    if tenant is not None:
        connection.execute("SELECT set_config('plan2flow.tenant', %s, true)", (tenant,))


def insert_params(table: str, tenant: str, row_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {"id": row_id or uuid.uuid4(), "tenant": tenant, "seq": next(_seq)}


@pytest.fixture
def seeded(memory_postgres: MemoryPostgres) -> Seeded:
    """Tenants A and B of this test, three rows each in every tenant table, inserted by the
    application role bound to each."""
    a, b = unique_tenant("a"), unique_tenant("b")
    create_tenants(memory_postgres, a, b)
    ids: dict[tuple[str, str], list[uuid.UUID]] = {}
    with psycopg.connect(memory_postgres.dsn(memory_postgres.app)) as connection:
        for tenant in (a, b):
            with connection.transaction():
                bind(connection, tenant)
                for table in TENANT_TABLES:
                    for _ in range(3):
                        params = insert_params(table, tenant)
                        connection.execute(INSERT[table], params)
                        ids.setdefault((table, tenant), []).append(params["id"])
    return Seeded(memory_postgres, a, b, ids)


# --- reading ------------------------------------------------------------------------------

READS = {
    "every row": "SELECT tenant FROM {t}",
    "B by name": "SELECT tenant FROM {t} WHERE tenant = %(b)s",
    "OR true": "SELECT tenant FROM {t} WHERE tenant = %(b)s OR true",
    "LIKE %": "SELECT tenant FROM {t} WHERE tenant LIKE '%%'",
    "UNION": "SELECT tenant FROM {t} WHERE tenant = %(a)s UNION ALL "
    "SELECT tenant FROM {t} WHERE tenant = %(b)s",
    "CTE": "WITH x AS (SELECT * FROM {t}) SELECT tenant FROM x WHERE tenant IN (%(a)s, %(b)s)",
    "subquery": "SELECT tenant FROM {t} WHERE id IN (SELECT id FROM {t} WHERE tenant = %(b)s) "
    "OR tenant = %(a)s",
}


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("bound", ["none", "empty", "percent", "injection"])
def test_without_a_real_tenant_nothing_is_visible(seeded: Seeded, table: str, bound: str) -> None:
    tenant = {"none": None, "empty": "", "percent": "%", "injection": "x' OR true --"}[bound]
    for sql in READS.values():
        assert seeded.tenants_seen(tenant, sql.format(t=table)) == []
    assert seeded.query(tenant, f"SELECT count(*) FROM {table}") == [(0,)]


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("attack", sorted(READS))
def test_tenant_a_reads_only_its_own_rows(seeded: Seeded, table: str, attack: str) -> None:
    seen = seeded.tenants_seen(seeded.a, READS[attack].format(t=table))
    assert seeded.b not in seen
    assert set(seen) <= {seeded.a}
    if attack != "B by name":
        assert seen == [seeded.a] * 3


def test_a_point_lookup_of_another_tenants_id_finds_nothing(seeded: Seeded) -> None:
    for table in TENANT_TABLES:
        for row_id in seeded.ids[(table, seeded.b)]:
            point = f"SELECT * FROM {table} WHERE id = %(id)s"
            assert seeded.query(seeded.a, point, id=row_id) == []


# --- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", EDITABLE)
def test_updates_and_deletes_aimed_at_another_tenant_touch_nothing(
    seeded: Seeded, table: str
) -> None:
    a, b = seeded.a, seeded.b
    column, was, new = EDITED[table]
    set_new = f"UPDATE {table} SET {column} = '{new}'"
    assert seeded.execute(a, f"{set_new} WHERE tenant = %(b)s") == 0
    assert seeded.execute(a, f"{set_new} WHERE true OR tenant = %(b)s") == 3
    assert seeded.execute(a, f"DELETE FROM {table} WHERE tenant = %(b)s") == 0
    assert seeded.execute(None, f"DELETE FROM {table}") == 0
    assert seeded.execute("", f"DELETE FROM {table}") == 0
    assert seeded.query(b, f"SELECT count(*) FROM {table} WHERE {column} = '{was}'") == [(3,)]
    assert seeded.execute(a, f"DELETE FROM {table} WHERE true") == 3
    assert seeded.query(b, f"SELECT count(*) FROM {table}") == [(3,)]


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_inserting_a_row_of_another_tenant_or_of_none_fails(seeded: Seeded, table: str) -> None:
    cases = [
        (seeded.a, seeded.b),  # A writes B's row
        (None, seeded.a),  # no tenant bound
        ("", seeded.a),
        ("", ""),
        ("%", seeded.a),
    ]
    for bound, row_tenant in cases:
        with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
            seeded.execute(bound, INSERT[table], **insert_params(table, row_tenant))
    with pytest.raises((pg_errors.InsufficientPrivilege, pg_errors.CheckViolation)):
        seeded.execute(seeded.a, INSERT[table], **insert_params(table, ""))


@pytest.mark.parametrize("table", EDITABLE)
def test_moving_an_own_row_to_another_tenant_fails(seeded: Seeded, table: str) -> None:
    with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
        seeded.execute(seeded.a, f"UPDATE {table} SET tenant = %(b)s")


def test_an_upsert_on_another_tenants_id_fails(seeded: Seeded) -> None:
    b_id = seeded.ids[("runs", seeded.b)][0]
    upsert = INSERT["runs"] + " ON CONFLICT (id) DO UPDATE SET plan = 'stolen'"
    with pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"):
        seeded.execute(seeded.a, upsert, id=b_id, tenant=seeded.a, seq=0)
    assert seeded.query(seeded.b, "SELECT plan FROM runs WHERE id = %(id)s", id=b_id) == [("p",)]


@pytest.mark.parametrize("table", JOURNALS)
def test_the_journals_are_append_only_for_the_application(seeded: Seeded, table: str) -> None:
    a = seeded.a
    for sql in (
        "UPDATE {t} SET tenant = %(t)s",
        "UPDATE {t} SET tenant = %(t)s WHERE tenant = %(t)s",
        "DELETE FROM {t}",
        "DELETE FROM {t} WHERE tenant = %(t)s",
        "TRUNCATE {t}",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
            seeded.execute(a, sql.format(t=table), t=a)
    assert seeded.query(a, f"SELECT count(*) FROM {table}") == [(3,)]


# --- escaping ----------------------------------------------------------------------------

ESCAPES = {
    "SET ROLE migrator": 'SET ROLE "{migrator}"',
    "SET ROLE postgres": "SET ROLE postgres",
    "SET SESSION AUTHORIZATION": 'SET SESSION AUTHORIZATION "{migrator}"',
    "DISABLE ROW LEVEL SECURITY": "ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
    "NO FORCE ROW LEVEL SECURITY": "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY": "DROP POLICY {t}_select ON {t}",
    "CREATE POLICY": "CREATE POLICY open ON {t} FOR SELECT USING (true)",
    "TRUNCATE": "TRUNCATE {t}",
    "DROP TABLE": "DROP TABLE {t}",
    "CREATE TABLE": "CREATE TABLE stolen AS SELECT * FROM {t}",
    "CREATE VIEW": "CREATE VIEW leak AS SELECT * FROM {t}",
    "ALTER TABLE OWNER": 'ALTER TABLE {t} OWNER TO "{app}"',
    "read alembic_version": "SELECT * FROM alembic_version",
    "write alembic_version": "UPDATE alembic_version SET version_num = 'x'",
    "INSERT INTO tenants": "INSERT INTO tenants (id, name, created) "
    "VALUES (gen_random_uuid(), 'evil', now())",
    "DELETE FROM tenants": "DELETE FROM tenants",
}


@pytest.mark.parametrize("attack", sorted(ESCAPES))
def test_the_application_role_cannot_escape_row_level_security(seeded: Seeded, attack: str) -> None:
    for table in TENANT_TABLES:
        sql = ESCAPES[attack].format(t=table, migrator=seeded.pg.migrator, app=seeded.pg.app)
        with pytest.raises(pg_errors.InsufficientPrivilege):
            seeded.execute(seeded.a, sql)
    for table in TENANT_TABLES:
        assert seeded.tenants_seen(seeded.a, f"SELECT tenant FROM {table}") == [seeded.a] * 3


def test_turning_row_security_off_fails_closed(seeded: Seeded) -> None:
    with seeded.app() as connection:
        connection.execute("SET row_security = off")
        for table in TENANT_TABLES:
            with (
                pytest.raises(
                    pg_errors.InsufficientPrivilege,
                    match="would be affected by row-level security",
                ),
                connection.transaction(),
            ):
                bind(connection, seeded.a)
                connection.execute(f"SELECT tenant FROM {table}")


def test_the_owner_sees_no_rows_without_a_tenant_either(seeded: Seeded) -> None:
    """FORCE ROW LEVEL SECURITY: the migration role owns the tables and is filtered too."""
    with psycopg.connect(seeded.pg.dsn(seeded.pg.migrator)) as connection:
        for table in TENANT_TABLES:
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]


def test_an_injected_set_config_is_not_stopped_by_row_level_security(seeded: Seeded) -> None:
    """The limit the documentation states: any role may set a custom setting, so SQL injection
    that runs `set_config` reads another tenant. Parameterised SQL is the defence; RLS is the
    net under query bugs."""
    with seeded.app() as connection:
        bind(connection, seeded.a)
        connection.execute("SELECT set_config('plan2flow.tenant', %s, true)", (seeded.b,))
        rows = connection.execute("SELECT tenant FROM runs").fetchall()
    assert sorted(row[0] for row in rows) == [seeded.b] * 3


# --- the engine's sessions and pool -----------------------------------------------------


@pytest.fixture
def app_database(seeded: Seeded) -> Iterator[Database]:
    database = open_database(seeded.pg.app_url(), pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def test_a_session_sees_its_tenant_in_every_transaction(
    seeded: Seeded, app_database: Database
) -> None:
    a, b = seeded.a, seeded.b
    with app_database.session(a) as session:
        assert {run.tenant for run in session.exec(select(Run)).all()} == {a}
        assert session.get(Run, seeded.ids[("runs", b)][0]) is None
        raw = session.execute(sa.text("SELECT tenant FROM runs")).scalars().all()
        assert raw == [a] * 3  # raw SQL too: PostgreSQL filters it
        session.commit()
        # a new transaction after the commit is bound again
        setting = sa.text("SELECT current_setting('plan2flow.tenant', true)")
        assert session.execute(setting).scalar() == a
        assert len(session.exec(select(Run)).all()) == 3
        stolen = session.execute(sa.update(Run).where(Run.tenant == b).values(plan="x"))
        assert stolen.rowcount == 0  # type: ignore[attr-defined]


def test_a_session_stamps_new_rows_and_refuses_another_tenants(
    seeded: Seeded, app_database: Database
) -> None:
    run = Run(id=uuid.uuid4(), plan="stamped", graph_hash="h")
    with app_database.session(seeded.a) as session:
        session.add(run)
    assert run.tenant == seeded.a
    with pytest.raises(TenantError, match="cannot write a row of tenant"):  # noqa: SIM117
        with app_database.session(seeded.a) as session:
            session.add(Run(id=uuid.uuid4(), tenant=seeded.b, plan="x", graph_hash="h"))
    with pytest.raises(TenantError, match="writes rows of tenant"):  # noqa: SIM117
        with app_database.session(seeded.a) as session:
            session.execute(sa.update(Run).values(tenant=seeded.b))


def test_the_application_may_insert_but_not_edit_audit_entries(
    seeded: Seeded, app_database: Database
) -> None:
    entry = AuditEntry(seq=next(_seq), actor="me", action="x", prev_hash="p", hash="h")
    with app_database.session(seeded.a) as session:
        session.add(entry)
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):  # noqa: SIM117
        with app_database.session(seeded.a) as session:
            row = session.get(AuditEntry, entry.id)
            assert row is not None
            row.actor = "someone else"


def test_an_unknown_tenant_names_the_command_that_creates_it(app_database: Database) -> None:
    with pytest.raises(TenantError, match="plan2flow tenants create nobody-here"):  # noqa: SIM117
        with app_database.session("nobody-here"):
            pass


def _backend(connection: sa.Connection) -> tuple[int, list[str], str | None]:
    pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    tenants = connection.execute(sa.text("SELECT tenant FROM runs")).scalars().all()
    setting = connection.execute(
        sa.text("SELECT current_setting('plan2flow.tenant', true)")
    ).scalar()
    return pid, list(tenants), setting


def test_no_tenant_leaks_across_pooled_connections(seeded: Seeded, app_database: Database) -> None:
    """A session-level SET by raw SQL (committed) is reset when the connection goes back to
    the pool: the next borrower of the same backend has no tenant."""
    with app_database.connect() as connection:
        first_pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        connection.execute(sa.text(f"SET plan2flow.tenant = '{seeded.a}'"))
        connection.commit()
        assert len(connection.execute(sa.text("SELECT tenant FROM runs")).all()) == 3
    with app_database.connect() as connection:
        pid, tenants, setting = _backend(connection)
    assert pid == first_pid
    assert tenants == []
    assert setting in ("", None)
    with app_database.session(seeded.b) as session:
        session.execute(sa.text("SELECT 1"))
    with app_database.connect() as connection:
        pid, tenants, setting = _backend(connection)
    assert pid == first_pid
    assert (tenants, setting) == ([], "")


def test_without_the_reset_hook_a_session_level_set_would_leak(seeded: Seeded) -> None:
    """Why the checkin hook exists: SQLAlchemy's own reset (a rollback) keeps a committed SET."""
    plain = sa.create_engine(
        seeded.pg.app_url().replace("postgresql://", "postgresql+psycopg://"),
        pool_size=1,
        max_overflow=0,
    )
    try:
        with plain.connect() as connection:
            connection.execute(sa.text(f"SET plan2flow.tenant = '{seeded.a}'"))
            connection.commit()
        with plain.connect() as connection:
            _, tenants, _ = _backend(connection)
        assert tenants == [seeded.a] * 3
    finally:
        plain.dispose()
