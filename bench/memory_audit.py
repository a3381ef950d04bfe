"""How fast the audit journal takes entries, on SQLite and (when reachable) PostgreSQL.

Usage::

    python bench/memory_audit.py [--n 2000] [--threads 4] [--backends sqlite,postgresql]
                                 [--superuser-dsn "host=127.0.0.1 user=postgres"]

SQLite is a fresh ``PLAN2FLOW_HOME`` of its own; PostgreSQL a database and two roles of its own
made by deploy/postgres/roles.sql (as the superuser, through ``psql``), migrated, used as the
application role, dropped at the end; an unreachable server is reported, not fatal. Prints one
JSON line; rates are entries per second, the median of 3 rounds of ``--n`` entries:

* ``per_transaction``: each append in a ``Database.session`` of its own, as ``audit.record``
  and the event feed do (read the last entry, insert in a savepoint, commit);
* ``batched_100``: 100 appends per transaction;
* ``keyed``: one keyed append per transaction (the feed's idempotency check by event id);
* ``threads``: ``--threads`` appenders at once, one transaction each, and ``seq_conflicts``:
  how many inserts lost the race for a seq and were retried (SQLite's ``BEGIN IMMEDIATE``
  serialises appenders, so none there);
* ``verify``: entries checked per second by ``audit.verify`` over the whole journal.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from plan2flow.memory import audit
from plan2flow.memory.db import migrate
from plan2flow.memory.db.engine import Database, configured_database, open_database
from plan2flow.memory.db.models import Tenant
from plan2flow.memory.settings import memory_settings

ROLES_SQL = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "roles.sql"
TENANT = "bench"
ROUNDS = 3
DETAIL = {"event_id": "3f0c", "run": "r1", "task": "load", "data": {"duration_seconds": 0.25}}


def rate(work: Callable[[int], None], n: int) -> float:
    """Median entries per second of `work(n)` over the rounds."""
    rates = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work(n)
        rates.append(n / (time.perf_counter() - start))
    return round(statistics.median(rates), 1)


def measure(database: Database, n: int, threads: int) -> dict[str, Any]:
    counter = iter(range(10**9))

    def per_transaction(count: int) -> None:
        for index in range(count):
            with database.session(TENANT) as session:
                audit.append(session, TENANT, "bench", "task.completed", f"etl/t{index}", DETAIL)

    def batched(count: int) -> None:
        for first in range(0, count, 100):
            with database.session(TENANT) as session:
                for index in range(first, min(first + 100, count)):
                    audit.append(session, TENANT, "bench", "task.started", f"etl/t{index}", DETAIL)

    def keyed(count: int) -> None:
        for _ in range(count):
            key = f"event:{next(counter)}"
            with database.session(TENANT) as session:
                audit.append(session, TENANT, "bench", "task.started", "etl", DETAIL, key=key)

    conflicts = [0]

    def count_conflict(context: Any) -> None:
        if isinstance(context.original_exception, Exception) and (
            "uq_audit_tenant_seq" in str(context.original_exception)
        ):
            conflicts[0] += 1

    def concurrent(count: int) -> None:
        share = count // threads
        workers = [threading.Thread(target=per_transaction, args=(share,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    per_transaction(50)  # warm-up: connections, prepared statements, the tenant check
    report: dict[str, Any] = {
        "per_transaction": rate(per_transaction, n),
        "batched_100": rate(batched, n),
        "keyed": rate(keyed, n),
    }
    sa.event.listen(database.engine, "handle_error", count_conflict)
    try:
        report["threads"] = rate(concurrent, n - n % threads)
    finally:
        sa.event.remove(database.engine, "handle_error", count_conflict)
    report["seq_conflicts"] = conflicts[0]
    with database.session(TENANT) as session:
        start = time.perf_counter()
        walk = audit.verify(session, TENANT)
        report["verify"] = round(walk.count / (time.perf_counter() - start), 1)
    report["entries"] = walk.count
    return report


def sqlite_report(n: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        database = configured_database(memory_settings({"PLAN2FLOW_HOME": home}))
        try:
            with database.connect() as connection:
                connection.execute(sa.insert(Tenant).values(**Tenant(name=TENANT).model_dump()))
                connection.commit()
            return measure(database, n, threads)
        finally:
            database.dispose()


def postgresql_report(n: int, threads: int, superuser_dsn: str) -> dict[str, Any]:
    try:
        psycopg.connect(superuser_dsn, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return {"unreachable": " ".join(str(error).split())}
    tag = uuid.uuid4().hex[:8]
    name, migrator, app = f"p2f_bench_{tag}", f"p2f_bench_{tag}_migrator", f"p2f_bench_{tag}_app"
    params = psycopg.conninfo.conninfo_to_dict(superuser_dsn)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    try:
        subprocess.run(
            [
                *(shutil.which("psql") or "psql", "-q", "-d", superuser_dsn),
                *("-f", str(ROLES_SQL), "-v", "ON_ERROR_STOP=1", "-v", f"database={name}"),
                *("-v", f"migrator={migrator}", "-v", f"app={app}"),
            ],
            check=True,
            capture_output=True,
        )
        migrate.upgrade(f"postgresql://{migrator}@{host}:{port}/{name}", app_role=app)
        with psycopg.connect(f"host={host} port={port} user={migrator} dbname={name}") as c:
            c.execute(
                "INSERT INTO tenants (id, name, created) VALUES (%s, %s, now())",
                (uuid.uuid4(), TENANT),
            )
        database = open_database(f"postgresql://{app}@{host}:{port}/{name}")
        try:
            return measure(database, n, threads)
        finally:
            database.dispose()
    finally:
        with psycopg.connect(superuser_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (app, migrator):
                connection.execute(f'DROP ROLE IF EXISTS "{role}"')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="entries per round")
    parser.add_argument("--threads", type=int, default=4, help="concurrent appenders")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument(
        "--superuser-dsn",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="a PostgreSQL superuser's connection (libpq key=value)",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    report: dict[str, Any] = {"n": args.n, "threads": args.threads, "rounds": ROUNDS}
    if "sqlite" in backends:
        report["sqlite"] = sqlite_report(args.n, args.threads)
    if "postgresql" in backends:
        report["postgresql"] = postgresql_report(args.n, args.threads, args.superuser_dsn)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
