"""The audit journal on a real database: appends chain per tenant, concurrent appenders never
fork a chain, idempotency keys, every kind of tampering done with raw SQL is found by verify,
and exports parse back into a chain that verifies."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from audit_db import append_many, raw, rows, sqlite_database, verify

from plan2flow.memory import audit
from plan2flow.memory.audit_chain import (
    GENESIS_HASH,
    ChainEntry,
    entry_hash,
    entry_record,
    verify_chain,
)
from plan2flow.memory.db.engine import Database
from plan2flow.memory.db.models import AuditEntry, Run
from plan2flow.memory.errors import AuditTampered, TenantError


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = sqlite_database(tmp_path / "home")
    yield db
    db.dispose()


def tampered(database: Database, tenant: str = "acme") -> AuditTampered:
    with pytest.raises(AuditTampered) as caught:
        verify(database, tenant)
    return caught.value


def test_appends_chain_one_tenant_entries(database: Database) -> None:
    append_many(database, "acme", 5)
    entries = rows(database, "acme")
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.time.tzinfo is not None and e.hash == entry_hash(e) for e in entries)
    walk = verify(database, "acme")
    assert (walk.count, walk.last_seq, walk.head) == (5, 5, entries[-1].hash)


def test_an_empty_journal_verifies(database: Database) -> None:
    walk = verify(database, "acme")
    assert (walk.count, walk.head) == (0, GENESIS_HASH)


def test_chains_of_tenants_are_independent(database: Database) -> None:
    for round_ in range(3):
        append_many(database, "acme", 2, start=round_ * 2)
        append_many(database, "globex", 1, start=round_)
    assert [e.seq for e in rows(database, "acme")] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in rows(database, "globex")] == [1, 2, 3]
    raw(database, "UPDATE audit_entries SET actor = 'mallory' WHERE tenant = 'globex' AND seq = 2")
    assert verify(database, "acme").count == 6
    assert tampered(database, "globex").entry == 2


SWAP = (
    "UPDATE audit_entries SET seq = 1000 WHERE tenant = 'acme' AND seq = 3",
    "UPDATE audit_entries SET seq = 3 WHERE tenant = 'acme' AND seq = 5",
    "UPDATE audit_entries SET seq = 5 WHERE tenant = 'acme' AND seq = 1000",
)
RENUMBER_FROM_3 = (
    "UPDATE audit_entries SET seq = -seq WHERE tenant = 'acme' AND seq >= 3",
    "UPDATE audit_entries SET seq = 1 - seq WHERE tenant = 'acme' AND seq < 0",
)
RENUMBER_DOWN_FROM_4 = (
    "DELETE FROM audit_entries WHERE tenant = 'acme' AND seq = 3",
    "UPDATE audit_entries SET seq = -seq WHERE tenant = 'acme' AND seq >= 4",
    "UPDATE audit_entries SET seq = -seq - 1 WHERE tenant = 'acme' AND seq < 0",
)


def _at(seq: int, change: str) -> tuple[str]:
    return (f"UPDATE audit_entries SET {change} WHERE tenant = 'acme' AND seq = {seq}",)


TAMPERING = {
    "edit-actor": (_at(3, "actor = 'mallory'"), 3, "edited"),
    "edit-action": (_at(3, "action = 'deploy'"), 3, "edited"),
    "edit-subject": (_at(3, "subject = 'x'"), 3, "edited"),
    "edit-detail": (_at(3, "detail = '{\"index\": 99}'"), 3, "edited"),
    "edit-time": (_at(3, "time = '2020-01-01 00:00:00.000000'"), 3, "edited"),
    "edit-hash": (_at(3, "hash = prev_hash"), 3, "edited"),
    "edit-prev-hash": (_at(3, "prev_hash = hash"), 3, "edited"),
    "delete": (("DELETE FROM audit_entries WHERE tenant = 'acme' AND seq = 3",), 3, "removed"),
    "delete-first": (
        ("DELETE FROM audit_entries WHERE tenant = 'acme' AND seq = 1",),
        1,
        "removed",
    ),
    "delete-and-renumber": (RENUMBER_DOWN_FROM_4, 3, "reordered"),
    "swap-seqs": (SWAP, 3, "reordered"),
    "move-to-another-tenant": (_at(3, "tenant = 'globex'"), 3, "removed"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_by_raw_sql_is_found_at_the_first_bad_entry(
    database: Database, case: str
) -> None:
    statements, entry, kind = TAMPERING[case]
    append_many(database, "acme", 6)
    for statement in statements:
        assert raw(database, statement) >= 1
    error = tampered(database)
    assert (error.tenant, error.entry, error.exit_status) == ("acme", entry, 1)
    assert str(error).startswith("the audit journal of tenant 'acme' is broken: entry ")
    with database.session("acme") as session:
        problem = verify_chain(audit.entries(session, "acme"), "acme")
    assert problem is not None and (problem.seq, problem.kind) == (entry, kind)


def test_an_entry_inserted_in_the_middle_with_a_right_hash_is_found(database: Database) -> None:
    append_many(database, "acme", 5)
    second = rows(database, "acme")[1]
    for statement in RENUMBER_FROM_3:
        raw(database, statement)
    forged = ChainEntry(
        "acme",
        3,
        second.time + dt.timedelta(milliseconds=1),
        "ada",
        "task.completed",
        "etl/forged",
        {},
        second.hash,
        "",
    )
    with database.connect() as connection:
        connection.execute(
            sa.insert(AuditEntry).values(
                id=uuid.uuid4(),
                **entry_record(forged) | {"time": forged.time, "hash": entry_hash(forged)},
            )
        )
        connection.commit()
    error = tampered(database)
    assert error.entry == 3
    assert "entry 3 was inserted: entry 4 links to entry 2, not to it" in str(error)


def test_an_entry_moved_into_another_tenant_is_found_in_both(database: Database) -> None:
    append_many(database, "acme", 4)
    append_many(database, "globex", 2)
    raw(database, "UPDATE audit_entries SET tenant = 'globex' WHERE tenant = 'acme' AND seq = 3")
    with database.connect() as connection:
        moved = connection.execute(
            sa.select(AuditEntry.tenant, AuditEntry.seq).where(AuditEntry.seq == 3)
        ).all()
    assert [tuple(row) for row in moved] == [("globex", 3)]
    assert "entry 3 removed" in str(tampered(database, "acme"))
    error = tampered(database, "globex")
    assert error.entry == 3
    assert "entry 3 was moved or renumbered: it does not follow entry 2" in str(error)


def test_concurrent_appenders_in_threads_never_fork_the_chain(database: Database) -> None:
    threads, each = 4, 15
    failures: list[BaseException] = []

    def appender(number: int) -> None:
        try:
            for index in range(each):
                with database.session("acme") as session:
                    audit.append(session, "acme", f"w{number}", "run.started", f"r{index}")
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    workers = [threading.Thread(target=appender, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert failures == []
    walk = verify(database, "acme")
    assert (walk.count, walk.last_seq) == (threads * each, threads * each)
    actors = [e.actor for e in rows(database, "acme")]
    assert sorted(set(actors)) == [f"w{n}" for n in range(threads)]


APPENDER = """
import sys
from plan2flow.memory import audit
from plan2flow.memory.db.engine import open_database
database = open_database(sys.argv[1])
for index in range(int(sys.argv[3])):
    with database.session("acme") as session:
        audit.append(session, "acme", sys.argv[2], "task.started", f"t{index}")
"""


@pytest.mark.slow
def test_concurrent_appenders_in_processes_never_fork_the_chain(database: Database) -> None:
    url = database.engine.url.render_as_string(hide_password=False)
    each = 40
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, url, f"p{n}", str(each)])
        for n in range(2)
    ]
    assert [p.wait(120) for p in processes] == [0, 0]
    walk = verify(database, "acme")
    assert walk.count == 2 * each


def test_an_appender_that_loses_the_race_for_a_seq_reads_again(database: Database) -> None:
    """Another appender takes seq 1 between this one's read and its insert (injected at the
    savepoint); the caller's own work in the transaction survives the lost attempt."""
    rival = ChainEntry(
        "acme", 1, dt.datetime.now(dt.UTC), "rival", "deploy", "etl", {}, GENESIS_HASH, ""
    )
    injected: list[str] = []

    def take_seq_first(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SAVEPOINT") and not injected:
            injected.append(statement)
            values = entry_record(rival) | {"time": rival.time, "hash": entry_hash(rival)}
            connection.execute(sa.insert(AuditEntry).values(id=uuid.uuid4(), **values))

    sa.event.listen(database.engine, "before_cursor_execute", take_seq_first)
    try:
        with database.session("acme") as session:
            session.add(Run(id=uuid.uuid4(), tenant="acme", plan="etl", graph_hash="ab"))
            entry = audit.append(session, "acme", "ada", "compile", "etl")
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", take_seq_first)
    assert len(injected) == 1
    assert (entry.seq, entry.prev_hash) == (2, entry_hash(rival))
    assert [e.actor for e in rows(database, "acme")] == ["rival", "ada"]
    with database.session("acme") as session:
        assert len(session.exec(sa.select(Run)).all()) == 1  # type: ignore[call-overload]
    assert verify(database, "acme").count == 2


def test_a_key_records_once_even_for_concurrent_appenders(database: Database) -> None:
    with database.session("acme") as session:
        first = audit.append(session, "acme", "ada", "deploy", "etl", key="deploy:1")
        again = audit.append(session, "acme", "bob", "deploy", "etl", {"x": 1}, key="deploy:1")
    assert (again.id, again.actor, again.seq) == (first.id, "ada", 1)
    with database.session("globex") as session:
        other = audit.append(session, "globex", "ada", "deploy", "etl", key="deploy:1")
    assert other.id != first.id
    barrier = threading.Barrier(4)

    def racer() -> None:
        barrier.wait(30)
        audit.record(database, "acme", "deploy", "etl", key="deploy:2", who="racer")

    workers = [threading.Thread(target=racer) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [e.subject for e in rows(database, "acme")] == ["etl", "etl"]
    assert verify(database, "acme").count == 2


def test_entries_since_a_time(database: Database) -> None:
    append_many(database, "acme", 3)
    middle = rows(database, "acme")[1].time
    append_many(database, "acme", 2, start=3)
    with database.session("acme") as session:
        since = [e.seq for e in audit.entries(session, "acme", since=middle)]
        later = list(audit.entries(session, "acme", since=dt.datetime.now(dt.UTC)))
    assert since == [2, 3, 4, 5]
    assert later == []


def test_unknown_actions_and_bad_tenants_are_refused(database: Database) -> None:
    with database.session("acme") as session:
        with pytest.raises(ValueError, match="unknown audit action 'compiled'"):
            audit.append(session, "acme", "ada", "compiled")
        with pytest.raises(TenantError):
            audit.append(session, "Acme", "ada", "compile")
        with pytest.raises(ValueError):
            audit.append(session, "acme", "ada", "compile", detail={"x": float("inf")})


def test_actor_is_the_variable_or_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    assert audit.actor({"PLAN2FLOW_ACTOR": " ci-bot "}) == "ci-bot"
    monkeypatch.delenv("PLAN2FLOW_ACTOR", raising=False)
    assert audit.actor() == getpass.getuser()
    assert audit.actor({"PLAN2FLOW_ACTOR": ""}) == getpass.getuser()


def test_every_action_is_listed_once_and_sorted() -> None:
    assert list(audit.ACTIONS) == sorted(set(audit.ACTIONS))
    for needed in ("compile", "deploy", "run.started", "task.not_run", "artifact.deleted"):
        assert needed in audit.ACTIONS
    for needed in ("agent.registered", "keys.rotated", "tenant.created", "artifact.stored"):
        assert needed in audit.ACTIONS


def _parse(text: str, format: str) -> list[ChainEntry]:
    if format == "json":
        records = json.loads(text)
    elif format == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    else:
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    return [ChainEntry.from_dict(record) for record in records]


@pytest.mark.parametrize("format", audit.EXPORT_FORMATS)
def test_exports_parse_back_into_a_chain_that_verifies(database: Database, format: Any) -> None:
    append_many(database, "acme", 4)
    audit.record(database, "acme", "deploy", 'etl,"quoted"\nline', {"é": "ü", "n": None})
    stream = io.StringIO(newline="")
    with database.session("acme") as session:
        assert audit.export(audit.entries(session, "acme"), stream, format) == 5
    parsed = _parse(stream.getvalue(), format)
    assert [entry_record(e) for e in parsed] == [entry_record(e) for e in rows(database, "acme")]
    assert verify_chain(parsed, "acme") is None
    tampered_copy = [parsed[0], parsed[1].__class__(**{**parsed[1].__dict__, "actor": "x"})]
    assert verify_chain(tampered_copy) is not None


@pytest.mark.parametrize("format", audit.EXPORT_FORMATS)
def test_an_empty_export_parses(format: Any) -> None:
    stream = io.StringIO(newline="")
    assert audit.export([], stream, format) == 0
    assert _parse(stream.getvalue(), format) == []
    with pytest.raises(ValueError, match="unknown export format"):
        audit.export([], stream, "xml")  # type: ignore[arg-type]
