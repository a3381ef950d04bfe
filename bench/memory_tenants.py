"""What binding a tenant costs per transaction on the metadata database.

Usage::

    python bench/memory_tenants.py [--n 2000] [--superuser-dsn "host=127.0.0.1 user=postgres"]

Sets up a database and two roles of its own with deploy/postgres/roles.sql (as the superuser,
through ``psql``), migrates it, runs every measurement as the application role, then drops
them. Prints one JSON line of medians over 5 rounds of ``--n`` transactions, in microseconds per
transaction; each transaction reads one row of 100 of one tenant:

* ``core_us``: a Core transaction with ``WHERE tenant = :t`` on an engine without plan2flow's
  hooks, no tenant bound (row-level security shows it nothing: the floor of one round trip);
* ``core_set_config_us``: the same plus ``SELECT set_config('plan2flow.tenant', :t, true)``;
* ``core_set_config_reset_us``: the same on plan2flow's engine, whose pool runs ``RESET ALL``
  at every checkin;
* ``orm_bound_us``: a plain sqlmodel Session with the ``set_config`` and the ``WHERE`` by hand;
* ``session_us``: ``Database.session(tenant)`` (binding, ORM filter, stamping, reset);
* ``sqlite_plain_us`` / ``sqlite_session_us``: a plain Session and ``Database.session`` on
  SQLite (no binding there: the ORM filter only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlmodel import Session, select

from plan2flow.memory.db import migrate
from plan2flow.memory.db.engine import configured_database, open_database
from plan2flow.memory.db.models import Run, Tenant
from plan2flow.memory.settings import memory_settings

ROLES_SQL = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "roles.sql"
TENANT = "bench"
BIND = sa.text("SELECT set_config('plan2flow.tenant', :t, true)")
ONE = sa.text("SELECT id FROM runs WHERE tenant = :t LIMIT 1")


def median_us(cases: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median microseconds per call of each case, rounds interleaved (load drifts)."""
    for case in cases.values():
        for _ in range(min(n, 200)):
            case()
    rounds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, case in cases.items():
            start = time.perf_counter()
            for _ in range(n):
                case()
            rounds[name].append((time.perf_counter() - start) / n * 1e6)
    return {name: round(statistics.median(values), 1) for name, values in rounds.items()}


def postgresql_cases(app_url: str, n: int) -> dict[str, float]:
    database = open_database(app_url)
    plain = sa.create_engine(app_url.replace("postgresql://", "postgresql+psycopg://"))
    with database.session(TENANT) as session:
        for _ in range(100):
            session.add(Run(id=uuid.uuid4(), plan="p", graph_hash="h"))

    def core() -> object:
        with plain.begin() as connection:
            return connection.execute(ONE, {"t": TENANT}).first()

    def core_set_config() -> object:
        with plain.begin() as connection:
            connection.execute(BIND, {"t": TENANT})
            return connection.execute(ONE, {"t": TENANT}).first()

    def core_set_config_reset() -> object:
        with database.engine.begin() as connection:
            connection.execute(BIND, {"t": TENANT})
            return connection.execute(ONE, {"t": TENANT}).first()

    def orm_bound() -> object:
        with Session(plain) as session, session.begin():
            session.execute(BIND, {"t": TENANT})
            return session.exec(select(Run).where(Run.tenant == TENANT).limit(1)).first()

    def session() -> object:
        with database.session(TENANT) as bound:
            return bound.exec(select(Run).limit(1)).first()

    try:
        return median_us(
            {
                "core_us": core,
                "core_set_config_us": core_set_config,
                "core_set_config_reset_us": core_set_config_reset,
                "orm_bound_us": orm_bound,
                "session_us": session,
            },
            n,
        )
    finally:
        database.dispose()
        plain.dispose()


def sqlite_cases(home: Path, n: int) -> dict[str, float]:
    settings = memory_settings({"PLAN2FLOW_HOME": str(home)})
    database = configured_database(settings)
    with database.connect() as connection:
        connection.execute(sa.insert(Tenant).values(**Tenant(name=TENANT).model_dump()))
        connection.commit()
    with database.session(TENANT) as session:
        for _ in range(100):
            session.add(Run(id=uuid.uuid4(), plan="p", graph_hash="h"))
    plain = sa.create_engine(settings.database_url)

    def orm_plain() -> object:
        with Session(plain) as session, session.begin():
            return session.exec(select(Run).where(Run.tenant == TENANT).limit(1)).first()

    def session() -> object:
        with database.session(TENANT) as bound:
            return bound.exec(select(Run).limit(1)).first()

    try:
        return median_us({"sqlite_plain_us": orm_plain, "sqlite_session_us": session}, n)
    finally:
        database.dispose()
        plain.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="transactions per round")
    parser.add_argument(
        "--superuser-dsn",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="a PostgreSQL superuser's connection (libpq key=value)",
    )
    args = parser.parse_args(argv)
    tag = uuid.uuid4().hex[:8]
    name, migrator, app = f"p2f_bench_{tag}", f"p2f_bench_{tag}_migrator", f"p2f_bench_{tag}_app"
    params = psycopg.conninfo.conninfo_to_dict(args.superuser_dsn)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    report: dict[str, object] = {"n": args.n}
    try:
        subprocess.run(
            [
                *(shutil.which("psql") or "psql", "-q", "-d", args.superuser_dsn),
                *("-f", str(ROLES_SQL), "-v", "ON_ERROR_STOP=1", "-v", f"database={name}"),
                *("-v", f"migrator={migrator}", "-v", f"app={app}"),
            ],
            check=True,
            capture_output=True,
        )
        admin_url = f"postgresql://{migrator}@{host}:{port}/{name}"
        app_url = f"postgresql://{app}@{host}:{port}/{name}"
        migrate.upgrade(admin_url, app_role=app)
        with psycopg.connect(f"host={host} port={port} user={migrator} dbname={name}") as c:
            c.execute(
                "INSERT INTO tenants (id, name, created) VALUES (%s, %s, now())",
                (uuid.uuid4(), TENANT),
            )
        report |= postgresql_cases(app_url, args.n)
    finally:
        with psycopg.connect(args.superuser_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (app, migrator):
                connection.execute(f'DROP ROLE IF EXISTS "{role}"')
    with tempfile.TemporaryDirectory() as home:
        report |= sqlite_cases(Path(home), args.n)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
