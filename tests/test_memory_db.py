"""The metadata database's engine: tenant-bound sessions, the ORM's enforcement on SQLite (and
its limit: raw SQL), opening the configured database, and errors that say what to do."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from memory_pg import MemoryPostgres
from sqlmodel import select

from plan2flow.memory.audit import entries
from plan2flow.memory.db import migrate
from plan2flow.memory.db.engine import Database, configured_database, open_database
from plan2flow.memory.db.models import ArtifactRecord, AuditEntry, Run
from plan2flow.memory.errors import DatabaseUnavailable, SchemaOutOfDate, TenantError
from plan2flow.memory.settings import memory_settings
from plan2flow.memory.tenants import create_tenant, list_tenants


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def sqlite_db(home: Path) -> Iterator[Database]:
    """The SQLite default with tenants `default`, `a` and `b`, and two runs of each."""
    settings = memory_settings({"PLAN2FLOW_HOME": str(home)})
    database = configured_database(settings)
    for name in ("a", "b"):
        create_tenant(name, settings)
        with database.session(name) as session:
            for plan in ("p1", "p2"):
                session.add(Run(id=uuid.uuid4(), plan=plan, graph_hash="h"))
    yield database
    database.dispose()


def artifact(**fields: object) -> ArtifactRecord:
    base: dict[str, object] = {"name": "x", "size": 1, "digest": "d", "content_digest": "d"}
    return ArtifactRecord(**(base | fields))


@pytest.mark.slow
def test_processes_racing_for_the_first_use_all_get_a_migrated_database(home: Path) -> None:
    """Workers starting at once on a new home: one migrates, the others wait for it."""
    code = (
        "import sys\n"
        "from plan2flow.memory.db.engine import configured_database\n"
        "from plan2flow.memory.settings import memory_settings\n"
        "db = configured_database(memory_settings({'PLAN2FLOW_HOME': sys.argv[1]}))\n"
        "print(db.tenant_exists('default'))\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4
    assert outputs == ["True\n"] * 4
    assert migrate.current(f"sqlite:///{home}/plan2flow.db") == migrate.head()


# --- SQLite: the ORM enforces the tenant -------------------------------------------------


def test_the_sqlite_default_is_migrated_and_has_the_default_tenant(home: Path) -> None:
    settings = memory_settings({"PLAN2FLOW_HOME": str(home)})
    with configured_database(settings) as database:
        assert database.dialect == "sqlite"
        assert database.tenant_exists("default")
        with database.connect() as connection:
            assert migrate.schema_revision(connection) == migrate.head()
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert (home / "plan2flow.db").exists()
    assert [tenant.name for tenant in list_tenants(settings)] == ["default"]
    with configured_database(settings):  # again: nothing to do
        pass


def test_orm_queries_see_only_the_bound_tenant(sqlite_db: Database) -> None:
    with sqlite_db.session("a") as session:
        runs = session.exec(select(Run)).all()
        assert {run.tenant for run in runs} == {"a"} and len(runs) == 2
        assert session.exec(select(Run).where(Run.tenant == "b")).all() == []
        assert session.exec(select(Run.plan).where(Run.tenant == "b")).all() == []
        assert session.exec(select(sa.func.count()).select_from(Run)).one() == 2
    with sqlite_db.session("b") as session:
        b_ids = [run.id for run in session.exec(select(Run)).all()]
    with sqlite_db.session("a") as session:
        assert all(session.get(Run, run_id) is None for run_id in b_ids)


def test_orm_updates_and_deletes_touch_only_the_bound_tenant(sqlite_db: Database) -> None:
    with sqlite_db.session("a") as session:
        moved = session.execute(sa.update(Run).where(Run.tenant == "b").values(plan="x"))
        assert moved.rowcount == 0  # type: ignore[attr-defined]
        assert session.execute(sa.delete(Run)).rowcount == 2  # type: ignore[attr-defined]
    with sqlite_db.session("b") as session:
        assert sorted(run.plan for run in session.exec(select(Run)).all()) == ["p1", "p2"]


def test_new_rows_get_the_bound_tenant_and_rows_of_another_are_refused(
    sqlite_db: Database,
) -> None:
    record = artifact()
    with sqlite_db.session("a") as session:
        session.add(record)
    assert record.tenant == "a"
    with pytest.raises(TenantError, match="cannot write a row of tenant 'b'"):  # noqa: SIM117
        with sqlite_db.session("a") as session:
            session.add(artifact(tenant="b"))
    with pytest.raises(TenantError, match="cannot write a row of tenant 'b'"):  # noqa: SIM117
        with sqlite_db.session("a") as session:
            mine = session.get(ArtifactRecord, record.id)
            assert mine is not None
            mine.tenant = "b"
    with pytest.raises(TenantError, match="writes rows of tenant 'b'"):  # noqa: SIM117
        with sqlite_db.session("a") as session:
            session.execute(sa.update(Run).values(tenant="b"))
    with pytest.raises(TenantError, match="writes rows of tenant 'b'"):  # noqa: SIM117
        with sqlite_db.session("a") as session:
            row = {"id": uuid.uuid4(), "tenant": "b", "plan": "x", "graph_hash": "h"}
            session.execute(sa.insert(Run), [row])
    with sqlite_db.session("b") as session:
        assert session.exec(select(ArtifactRecord)).all() == []
        assert len(session.exec(select(Run)).all()) == 2


def test_a_failed_block_rolls_back_and_a_clean_one_commits(sqlite_db: Database) -> None:
    with pytest.raises(RuntimeError), sqlite_db.session("a") as session:
        session.add(Run(id=uuid.uuid4(), plan="lost", graph_hash="h"))
        session.flush()
        raise RuntimeError("boom")
    with sqlite_db.session("a") as session:
        assert "lost" not in {run.plan for run in session.exec(select(Run)).all()}


def test_raw_sql_on_sqlite_is_not_enforced(sqlite_db: Database) -> None:
    """What docs/memory.md says: on SQLite only the ORM filters by tenant. Raw SQL sees every
    tenant (PostgreSQL filters the same SQL: tests/test_memory_rls.py)."""
    with sqlite_db.session("a") as session:
        raw = session.execute(sa.text("SELECT tenant FROM runs ORDER BY tenant")).scalars()
        assert list(raw) == ["a", "a", "b", "b"]


def test_sessions_of_two_tenants_do_not_share_a_cached_filter(sqlite_db: Database) -> None:
    """The ORM filter is a cached statement with the tenant as a parameter: interleaved sessions
    of two tenants, in threads, each see only their own rows."""
    seen: dict[str, set[str]] = {"a": set(), "b": set()}

    def read(tenant: str) -> None:
        for _ in range(20):
            with sqlite_db.session(tenant) as session:
                seen[tenant] |= {run.tenant for run in session.exec(select(Run)).all()}

    threads = [threading.Thread(target=read, args=(t,)) for t in ("a", "b", "a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": {"a"}, "b": {"b"}}


def test_timestamps_come_back_aware_in_utc(sqlite_db: Database) -> None:
    moment = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    entry = AuditEntry(seq=99, time=moment, actor="me", action="x", prev_hash="p", hash="h")
    with sqlite_db.session("a") as session:
        session.add(entry)
    with sqlite_db.session("a") as session:
        stored = session.exec(select(AuditEntry).where(AuditEntry.seq == 99)).one()
    assert stored.time == moment and stored.time.tzinfo == dt.UTC
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):  # noqa: SIM117
        with sqlite_db.session("a") as session:
            session.add(Run(id=uuid.uuid4(), plan="p", graph_hash="h", started=dt.datetime.now()))


# --- tenants -------------------------------------------------------------------------------


def test_an_unknown_or_malformed_tenant_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(TenantError, match="`plan2flow tenants create acme`"):  # noqa: SIM117
        with sqlite_db.session("acme"):
            pass
    with pytest.raises(TenantError, match="not a DNS label"):  # noqa: SIM117
        with sqlite_db.session("Not_A_Label"):
            pass


def test_tenants_are_created_once_and_listed(home: Path) -> None:
    settings = memory_settings({"PLAN2FLOW_HOME": str(home)})
    created = create_tenant("team-7", settings)
    assert created.name == "team-7" and created.created.tzinfo == dt.UTC
    with pytest.raises(TenantError, match="exists already"):
        create_tenant("team-7", settings)
    with pytest.raises(TenantError, match="not a DNS label"):
        create_tenant("-team", settings)
    assert [t.name for t in list_tenants(settings)] == ["default", "team-7"]
    with configured_database(settings) as database, database.session("team-7") as session:
        [first] = list(entries(session, "team-7"))
    assert (first.seq, first.action, first.subject) == (1, "tenant.created", "team-7")


# --- errors ---------------------------------------------------------------------------------


def test_an_unreachable_database_says_where_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        open_database("postgresql://app:pa55-w0rd@127.0.0.1:1/plan2flow")
    message = str(caught.value)
    assert "pa55-w0rd" not in message
    assert "postgresql+psycopg://app:***@127.0.0.1:1/plan2flow" in message
    assert "Connection refused" in message
    assert caught.value.exit_status == 3


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
        open_database(f"sqlite:///{tmp_path}/missing/dir/p.db")


def test_unsupported_urls_are_refused_before_connecting() -> None:
    from plan2flow.memory.errors import MemoryStoreError

    for url in ("mysql://u@h/d", "postgresql+asyncpg://u@h/d", "not a url"):
        with pytest.raises(MemoryStoreError):
            open_database(url)


# --- PostgreSQL: schema state ---------------------------------------------------------------


def test_postgresql_behind_the_newest_revision_is_out_of_date(
    memory_postgres: MemoryPostgres, tmp_path: Path
) -> None:
    database = memory_postgres.create_database("_behind")
    try:
        settings = memory_settings(memory_postgres.environ(tmp_path, database))
        with pytest.raises(SchemaOutOfDate, match="not migrated") as caught:
            configured_database(settings)
        assert caught.value.exit_status == 4
        migrate.upgrade(settings.admin_url, "0001_tables", app_role=memory_postgres.app)
        with pytest.raises(SchemaOutOfDate, match=r"at revision 0001_tables.*plan2flow db upgrade"):
            configured_database(settings)
        migrate.upgrade(settings.admin_url, app_role=memory_postgres.app)
        with configured_database(settings) as ready:
            assert ready.is_postgresql
            assert not ready.tenant_exists("default")  # PostgreSQL: tenants are created
    finally:
        memory_postgres.drop_database(database)


def test_the_application_role_reads_the_revision_from_the_catalog(
    memory_postgres: MemoryPostgres,
) -> None:
    """It may not read alembic_version; the comment on it says the revision."""
    assert migrate.current(memory_postgres.app_url()) == migrate.head()
    assert migrate.current(memory_postgres.admin_url()) == migrate.head()
