"""Project memory's benchmark: the artifact store against plain copies, listing 100,000
artifacts, and (from bench/memory_tenants.py and bench/memory_audit.py) the tenant binding and
the audit journal, on SQLite and PostgreSQL.

Usage::

    python bench/memory.py [--sizes 1,64] [--rounds 5] [--rows 100000] [--n 500]
                           [--backends sqlite,postgresql] [--dir PATH]
                           [--superuser-dsn "host=127.0.0.1 user=postgres"]

PostgreSQL is a database and two roles of the benchmark's own (deploy/postgres/roles.sql, as
the superuser through ``psql``), used as the application role and dropped at the end. Prints one
JSON line:

* ``artifacts`` (SQLite, a local blob store on the filesystem of ``--dir``), per size in MiB,
  medians of ``--rounds``: ``put`` (``ArtifactStore.put`` of a file with new content: hash while
  copying, fsync, rename, then the row and its audit entry), ``get`` (``materialize``: read,
  verify, write, rename), ``put_sensitive``/``get_sensitive`` (AES-256-GCM), against
  ``copyfile`` (``shutil.copyfile``, no fsync) and ``copyfile_atomic`` (a copy with a put's
  guarantees: temporary, fsync, rename, fsync of the directory), ``sha256`` of the bytes, and
  ``one_thread_put``/``one_thread_get`` (the blob store's put and get as done before hashing
  overlapped the copy: one pass, one thread); ``ratios`` divides them;
* ``<backend>.small_puts_per_s``: puts of 1 KiB artifacts per second (a row and an audit entry
  each: the per-task cost of storing an output);
* ``<backend>.list``: ``--rows`` artifacts of one tenant (and a tenth as many of another)
  inserted in bulk, then the median milliseconds of ``search`` for a first page of 50 (no
  filter, by plan, by task, by label), of the page after it (by cursor), and of
  ``plan2flow artifacts list`` run in-process (open the store, query, print the table);
* ``<backend>.tenant_binding_us``: microseconds per transaction (memory_tenants.py);
* ``<backend>.audit``: audit appends per second (memory_audit.py's ``measure``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks

import memory_audit
import memory_blobs
import memory_tenants

from plan2flow.memory.artifact_meta import Producer
from plan2flow.memory.artifacts import ArtifactStore
from plan2flow.memory.blobs_local import LocalBlobStore
from plan2flow.memory.db import migrate
from plan2flow.memory.db.engine import Database, configured_database, open_database
from plan2flow.memory.db.models import ArtifactRecord, Tenant
from plan2flow.memory.keyring import Keyring
from plan2flow.memory.settings import memory_settings

MiB = 1 << 20
TENANT = "bench"
OTHER = "bench-other"
ROLES_SQL = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "roles.sql"
PLANS, TASKS = 10, 20
INSERT_BATCH = 5000
KEYRING = Keyring([("bench", os.urandom(32))])


def median_ms(work: Callable[[], object], rounds: int) -> float:
    """The median milliseconds of ``work`` over ``rounds`` calls, after one warm-up call."""
    work()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e3, 2)


# -- put and get against plain copies ------------------------------------------------------------


def _renew(source: Path, index: int) -> None:
    """New content for the next round (its first 8 bytes): a put of a new output, not a touch."""
    with open(source, "r+b") as file:
        file.write(index.to_bytes(8, "big"))


def _one_round(store: ArtifactStore, source: Path, work: Path, index: int) -> dict[str, float]:
    _renew(source, index)
    seconds = {
        "copyfile": memory_blobs._timed(lambda: shutil.copyfile(source, work / "copy")),
        "copyfile_atomic": memory_blobs._timed(
            lambda: memory_blobs._copy_atomic(source, work / "atomic")
        ),
        "sha256": memory_blobs._timed(lambda: memory_blobs._sha256(source)),
        "one_thread_put": memory_blobs._timed(
            lambda: memory_blobs._one_thread_put(source, work / "one_thread_put")
        ),
        "one_thread_get": memory_blobs._timed(
            lambda: memory_blobs._one_thread_get(source, work / "one_thread_get")
        ),
    }
    records: dict[str, ArtifactRecord] = {}

    def put(name: str, sensitive: bool) -> None:
        records[name] = store.put(source, name=name, sensitive=sensitive)

    seconds["put"] = memory_blobs._timed(lambda: put("plain", False))
    seconds["get"] = memory_blobs._timed(lambda: store.materialize(records["plain"], work / "got"))
    seconds["put_sensitive"] = memory_blobs._timed(lambda: put("sealed", True))
    seconds["get_sensitive"] = memory_blobs._timed(
        lambda: store.materialize(records["sealed"], work / "opened")
    )
    digest = memory_blobs._sha256(source)
    assert memory_blobs._sha256(work / "got") == digest == memory_blobs._sha256(work / "opened")
    for record in records.values():
        store.delete(record, grace=dt.timedelta(0))
    for name in ("copy", "atomic", "one_thread_put", "one_thread_get", "got", "opened"):
        (work / name).unlink()
    return seconds


def measure_transfer(size_mib: int, rounds: int, directory: Path) -> dict[str, Any]:
    home = directory / f"home-{size_mib}"
    source, work = directory / f"source-{size_mib}", directory / f"work-{size_mib}"
    work.mkdir()
    with open(source, "wb") as file:
        for _ in range(size_mib):
            file.write(os.urandom(MiB))
    database = configured_database(memory_settings({"PLAN2FLOW_HOME": str(home)}))
    store = ArtifactStore(database, LocalBlobStore(home / "blobs"), tenant="default", keys=KEYRING)
    for shard in range(256):  # a store in use: every shard directory exists
        (store.blobs.root / "default" / "sha256" / f"{shard:02x}").mkdir(parents=True)
    try:
        samples: dict[str, list[float]] = {}
        _one_round(store, source, work, 0)  # warm-up: the database, the tmp directories
        for index in range(1, rounds + 1):
            for name, value in _one_round(store, source, work, index).items():
                samples.setdefault(name, []).append(value)
    finally:
        database.dispose()
    median = {name: statistics.median(values) for name, values in samples.items()}
    size = size_mib * MiB
    figures: dict[str, Any] = {
        name: {"ms": round(value * 1e3, 2), "mib_per_s": round(size / MiB / value)}
        for name, value in median.items()
    }
    figures["ratios"] = {
        "put_over_copyfile": round(median["put"] / median["copyfile"], 2),
        "put_over_copyfile_atomic": round(median["put"] / median["copyfile_atomic"], 2),
        "get_over_copyfile": round(median["get"] / median["copyfile"], 2),
        "get_over_sha256": round(median["get"] / median["sha256"], 2),
        "put_over_one_thread_put": round(median["put"] / median["one_thread_put"], 2),
        "get_over_one_thread_get": round(median["get"] / median["one_thread_get"], 2),
        "put_sensitive_over_put": round(median["put_sensitive"] / median["put"], 2),
        "get_sensitive_over_get": round(median["get_sensitive"] / median["get"], 2),
    }
    return figures


# -- listing 100,000 artifacts ------------------------------------------------------------------


def _rows(tenant: str, count: int, start: dt.datetime) -> Iterator[dict[str, Any]]:
    for index in range(count):
        digest = f"{index:064x}"
        yield {
            "id": uuid.uuid4(),
            "tenant": tenant,
            "name": f"out-{index % 50}.json",
            "kind": "file",
            "media_type": "application/json",
            "size": 1024,
            "digest": digest,
            "content_digest": digest,
            "plan": f"plan-{index % PLANS}",
            "run_id": None,
            "task_id": f"task-{index % TASKS}",
            "graph_hash": "",
            "labels": {"team": f"team-{index % 4}"},
            "sensitive": False,
            "key_id": None,
            "wrapped_key": None,
            "created": start + dt.timedelta(milliseconds=index),
            "expires": None,
        }


def insert_rows(database: Database, tenant: str, count: int) -> float:
    """Insert ``count`` artifact rows of ``tenant`` in batches; the seconds it took."""
    started = time.perf_counter()
    rows = _rows(tenant, count, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    while batch := [row for _, row in zip(range(INSERT_BATCH), rows, strict=False)]:
        with database.session(tenant) as session:
            session.execute(sa.insert(ArtifactRecord), batch)
    with database.engine.begin() as connection:
        if database.is_postgresql:
            connection.execute(sa.text("ANALYZE artifacts"))
    return time.perf_counter() - started


def measure_list(
    database: Database, environ: dict[str, str], rows: int, rounds: int
) -> dict[str, Any]:
    from typer.testing import CliRunner

    from plan2flow.cli import app

    report: dict[str, Any] = {
        "rows": rows,
        "insert_s": round(insert_rows(database, TENANT, rows), 2),
        "other_tenant_rows": rows // 10,
    }
    insert_rows(database, OTHER, rows // 10)
    store = ArtifactStore(
        database, LocalBlobStore(Path(environ["PLAN2FLOW_HOME"]) / "b"), tenant=TENANT
    )
    first = store.search(limit=50)
    assert len(first.records) == 50 and first.next is not None
    report["first_page_ms"] = median_ms(lambda: store.search(limit=50), rounds)
    report["by_plan_ms"] = median_ms(lambda: store.search(plan="plan-3", limit=50), rounds)
    report["by_task_ms"] = median_ms(lambda: store.search(task_id="task-7", limit=50), rounds)
    report["by_label_ms"] = median_ms(
        lambda: store.search(labels={"team": "team-2"}, limit=50), rounds
    )
    report["next_page_ms"] = median_ms(lambda: store.search(limit=50, after=first.next), rounds)
    runner = CliRunner()

    def command() -> None:
        result = runner.invoke(app, ["artifacts", "list", "--tenant", TENANT], env=environ)
        assert result.exit_code == 0, result.output

    report["command_ms"] = median_ms(command, max(3, rounds // 4))
    return report


def measure_small_puts(database: Database, home: Path, count: int) -> float:
    """1 KiB artifacts put per second (new content each: a blob, a row, an audit entry)."""
    store = ArtifactStore(database, LocalBlobStore(home / "small"), tenant=TENANT)
    producer = Producer(plan="bench", task_id="t")
    payload = os.urandom(1024 - 8)
    start = time.perf_counter()
    for index in range(count):
        store.put(index.to_bytes(8, "big") + payload, name="o.json", producer=producer)
    return round(count / (time.perf_counter() - start), 1)


# -- the backends ---------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_backend(directory: Path) -> Iterator[tuple[Database, dict[str, str]]]:
    home = directory / "sqlite-home"
    environ = {"PLAN2FLOW_HOME": str(home)}
    database = configured_database(memory_settings(environ))
    with database.connect() as connection:
        for name in (TENANT, OTHER):
            connection.execute(sa.insert(Tenant).values(**Tenant(name=name).model_dump()))
        connection.commit()
    try:
        yield database, environ
    finally:
        database.dispose()


@contextlib.contextmanager
def postgresql_backend(
    superuser_dsn: str, directory: Path
) -> Iterator[tuple[Database, dict[str, str]]]:
    """A database and roles of the benchmark's own, as the application role."""
    tag = uuid.uuid4().hex[:8]
    name, migrator, app = f"p2f_bench_{tag}", f"p2f_bench_{tag}_migrator", f"p2f_bench_{tag}_app"
    params = psycopg.conninfo.conninfo_to_dict(superuser_dsn)
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    admin_url = f"postgresql://{migrator}@{host}:{port}/{name}"
    app_url = f"postgresql://{app}@{host}:{port}/{name}"
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
        migrate.upgrade(admin_url, app_role=app)
        with psycopg.connect(f"host={host} port={port} user={migrator} dbname={name}") as c:
            for tenant in (TENANT, OTHER):
                c.execute(
                    "INSERT INTO tenants (id, name, created) VALUES (%s, %s, now())",
                    (uuid.uuid4(), tenant),
                )
        environ = {
            "PLAN2FLOW_HOME": str(directory / "postgresql-home"),
            "PLAN2FLOW_DATABASE_URL": app_url,
            "PLAN2FLOW_DATABASE_ADMIN_URL": admin_url,
        }
        database = open_database(app_url)
        try:
            yield database, environ
        finally:
            database.dispose()
    finally:
        with psycopg.connect(superuser_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (app, migrator):
                connection.execute(f'DROP ROLE IF EXISTS "{role}"')


def measure_backend(backend: str, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    if backend == "sqlite":
        opened = sqlite_backend(directory)
    else:
        try:
            psycopg.connect(args.superuser_dsn, connect_timeout=3).close()
        except psycopg.OperationalError as error:
            return {"unreachable": " ".join(str(error).split())}
        opened = postgresql_backend(args.superuser_dsn, directory)
    with opened as (database, environ):
        home = Path(environ["PLAN2FLOW_HOME"])
        report: dict[str, Any] = {
            "small_puts_per_s": measure_small_puts(database, home, args.n),
            "list": measure_list(database, environ, args.rows, args.rounds * 4),
        }
        if backend == "sqlite":
            binding = memory_tenants.sqlite_cases(directory / "tenants-home", args.n)
        else:
            binding = memory_tenants.postgresql_cases(environ["PLAN2FLOW_DATABASE_URL"], args.n)
        report["tenant_binding_us"] = binding
        report["audit"] = memory_audit.measure(database, args.n, threads=4)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1,64", help="artifact sizes in MiB, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measure (the median)")
    parser.add_argument("--rows", type=int, default=100_000, help="artifacts to list from")
    parser.add_argument("--n", type=int, default=500, help="transactions per rate")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (its filesystem)")
    parser.add_argument(
        "--superuser-dsn",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="a PostgreSQL superuser's connection (libpq key=value)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.rounds < 1 or args.n < 4 or args.rows < 100 or min(sizes) < 1:
        parser.error("--rounds and --sizes must be at least 1, --n 4, --rows 100")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    report: dict[str, Any] = {"rounds": args.rounds, "n": args.n}
    with tempfile.TemporaryDirectory(prefix="p2f-bench-", dir=args.dir) as directory:
        root = Path(directory)
        report["artifacts"] = {
            f"{size}MiB": measure_transfer(size, args.rounds, root) for size in sizes
        }
        for backend in backends:
            report[backend] = measure_backend(backend, args, root)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
