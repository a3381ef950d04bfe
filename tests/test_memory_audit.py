"""The audit journal on SQLite and PostgreSQL: appends chain per tenant, concurrent appenders
never fork a chain, idempotency keys, every kind of tampering done with raw SQL is found by
verify, the application role cannot edit the journal, and exports parse back into a chain that
verifies."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import subprocess
import sys
import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from audit_db import Journal, journal, pg_journal
from sqlmodel import select

from plan2flow.memory import audit
from plan2flow.memory.audit_chain import (
    GENESIS_HASH,
    ChainEntry,
    entry_hash,
    entry_record,
    verify_chain,
)
from plan2flow.memory.db.models import AuditEntry, Run
from plan2flow.memory.errors import AuditTampered, TenantError

__all__ = ["journal", "pg_journal"]  # the fixtures


def tampered(journal: Journal, tenant: str) -> AuditTampered:
    with pytest.raises(AuditTampered) as caught:
        journal.verify(tenant)
    return caught.value


def stored(entry: ChainEntry) -> dict[str, Any]:
    """The row of an entry written around the application."""
    return entry_record(entry) | {"id": uuid.uuid4(), "time": entry.time, "hash": entry_hash(entry)}


def test_appends_chain_one_tenant_entries(journal: Journal) -> None:
    journal.append_many(journal.acme, 5)
    entries = journal.rows(journal.acme)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.time.tzinfo is not None and e.hash == entry_hash(e) for e in entries)
    walk = journal.verify(journal.acme)
    assert (walk.count, walk.last_seq, walk.head) == (5, 5, entries[-1].hash)


def test_an_empty_journal_verifies(journal: Journal) -> None:
    walk = journal.verify(journal.acme)
    assert (walk.count, walk.head) == (0, GENESIS_HASH)


def test_chains_of_tenants_are_independent(journal: Journal) -> None:
    acme, globex = journal.acme, journal.globex
    for round_ in range(3):
        journal.append_many(acme, 2, start=round_ * 2)
        journal.append_many(globex, 1, start=round_)
    assert [e.seq for e in journal.rows(acme)] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in journal.rows(globex)] == [1, 2, 3]
    edit = "UPDATE audit_entries SET actor = 'mallory' WHERE tenant = :t AND seq = 2"
    assert journal.raw(edit, t=globex) == 1
    assert journal.verify(acme).count == 6
    assert tampered(journal, globex).entry == 2


SWAP = (
    "UPDATE audit_entries SET seq = 1000 WHERE tenant = :t AND seq = 3",
    "UPDATE audit_entries SET seq = 3 WHERE tenant = :t AND seq = 5",
    "UPDATE audit_entries SET seq = 5 WHERE tenant = :t AND seq = 1000",
)
RENUMBER_FROM_3 = (
    "UPDATE audit_entries SET seq = -seq WHERE tenant = :t AND seq >= 3",
    "UPDATE audit_entries SET seq = 1 - seq WHERE tenant = :t AND seq < 0",
)
RENUMBER_DOWN_FROM_4 = (
    "DELETE FROM audit_entries WHERE tenant = :t AND seq = 3",
    "UPDATE audit_entries SET seq = -seq WHERE tenant = :t AND seq >= 4",
    "UPDATE audit_entries SET seq = -seq - 1 WHERE tenant = :t AND seq < 0",
)


def _at(seq: int, change: str) -> tuple[str]:
    return (f"UPDATE audit_entries SET {change} WHERE tenant = :t AND seq = {seq}",)


TAMPERING = {
    "edit-actor": (_at(3, "actor = 'mallory'"), 3, "edited"),
    "edit-action": (_at(3, "action = 'deploy'"), 3, "edited"),
    "edit-subject": (_at(3, "subject = 'x'"), 3, "edited"),
    "edit-detail": (_at(3, "detail = '{\"index\": 99}'"), 3, "edited"),
    "edit-time": (_at(3, "time = '2020-01-01 00:00:00.000000'"), 3, "edited"),
    "edit-hash": (_at(3, "hash = prev_hash"), 3, "edited"),
    "edit-prev-hash": (_at(3, "prev_hash = hash"), 3, "edited"),
    "delete": (("DELETE FROM audit_entries WHERE tenant = :t AND seq = 3",), 3, "removed"),
    "delete-first": (("DELETE FROM audit_entries WHERE tenant = :t AND seq = 1",), 1, "removed"),
    "delete-and-renumber": (RENUMBER_DOWN_FROM_4, 3, "reordered"),
    "swap-seqs": (SWAP, 3, "reordered"),
    "move-to-another-tenant": (_at(3, "tenant = :other"), 3, "removed"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_by_raw_sql_is_found_at_the_first_bad_entry(journal: Journal, case: str) -> None:
    statements, entry, kind = TAMPERING[case]
    acme = journal.acme
    journal.append_many(acme, 6)
    for statement in statements:
        assert journal.raw(statement, t=acme, other=journal.globex) >= 1
    error = tampered(journal, acme)
    assert (error.tenant, error.entry, error.exit_status) == (acme, entry, 1)
    assert str(error).startswith(f"the audit journal of tenant '{acme}' is broken: entry ")
    with journal.database.session(acme) as session:
        problem = verify_chain(list(audit.entries(session, acme)), acme)
    assert problem is not None and (problem.seq, problem.kind) == (entry, kind)


def test_an_entry_inserted_in_the_middle_with_a_right_hash_is_found(journal: Journal) -> None:
    acme = journal.acme
    journal.append_many(acme, 5)
    second = journal.rows(acme)[1]
    for statement in RENUMBER_FROM_3:
        journal.raw(statement, t=acme)
    forged = ChainEntry(
        acme,
        3,
        second.time + dt.timedelta(milliseconds=1),
        "ada",
        "task.completed",
        "etl/forged",
        {},
        second.hash,
        "",
    )
    journal.insert_raw(**stored(forged))
    error = tampered(journal, acme)
    assert error.entry == 3
    assert "entry 3 was inserted: entry 4 links to entry 2, not to it" in str(error)


def test_an_entry_moved_into_another_tenant_is_found_in_both(journal: Journal) -> None:
    acme, globex = journal.acme, journal.globex
    journal.append_many(acme, 4)
    journal.append_many(globex, 2)
    move = "UPDATE audit_entries SET tenant = :other WHERE tenant = :t AND seq = 3"
    assert journal.raw(move, t=acme, other=globex) == 1
    assert [e.seq for e in journal.rows(globex)] == [1, 2, 3]
    assert "entry 3 removed" in str(tampered(journal, acme))
    error = tampered(journal, globex)
    assert error.entry == 3
    assert "entry 3 was moved or renumbered: it does not follow entry 2" in str(error)


def test_the_application_cannot_edit_or_delete_the_journal(pg_journal: Journal) -> None:
    """On PostgreSQL the application role may only INSERT and SELECT audit entries (SQLite has
    no roles: whoever may write the file may edit the journal, and only verify tells)."""
    journal = pg_journal
    acme = journal.acme
    journal.append_many(acme, 3)
    for sql in (
        "UPDATE audit_entries SET actor = 'x' WHERE tenant = :t",
        "DELETE FROM audit_entries WHERE tenant = :t AND seq = 3",
        "TRUNCATE audit_entries",
    ):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):  # noqa: SIM117
            with journal.database.session(acme) as session:
                session.execute(sa.text(sql), {"t": acme})
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):  # noqa: SIM117
        with journal.database.session(acme) as session:
            session.exec(select(AuditEntry).where(AuditEntry.seq == 2)).one().actor = "x"
    assert journal.verify(acme).count == 3


def test_concurrent_appenders_in_threads_never_fork_the_chain(journal: Journal) -> None:
    acme = journal.acme
    threads, each = 4, 15
    failures: list[BaseException] = []

    def appender(number: int) -> None:
        try:
            for index in range(each):
                with journal.database.session(acme) as session:
                    audit.append(session, acme, f"w{number}", "run.started", f"r{index}")
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    workers = [threading.Thread(target=appender, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert failures == []
    walk = journal.verify(acme)
    assert (walk.count, walk.last_seq) == (threads * each, threads * each)
    actors = [e.actor for e in journal.rows(acme)]
    assert sorted(set(actors)) == [f"w{n}" for n in range(threads)]


APPENDER = """
import sys
from plan2flow.memory import audit
from plan2flow.memory.db.engine import open_database
url, tenant, name, count = sys.argv[1:]
database = open_database(url)
for index in range(int(count)):
    with database.session(tenant) as session:
        audit.append(session, tenant, name, "task.started", f"t{index}")
"""


@pytest.mark.slow
def test_concurrent_appenders_in_processes_never_fork_the_chain(journal: Journal) -> None:
    url = journal.database.engine.url.render_as_string(hide_password=False)
    each = 40
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, url, journal.acme, f"p{n}", str(each)])
        for n in range(2)
    ]
    assert [p.wait(120) for p in processes] == [0, 0]
    assert journal.verify(journal.acme).count == 2 * each


def test_an_appender_that_loses_the_race_for_a_seq_reads_again(journal: Journal) -> None:
    """Another appender takes seq 1 between this one's read and its insert (injected at the
    savepoint); the caller's own work in the transaction survives the lost attempt."""
    acme = journal.acme
    now = dt.datetime.now(dt.UTC)
    rival = ChainEntry(acme, 1, now, "rival", "deploy", "etl", {}, GENESIS_HASH, "")
    injected: list[str] = []

    def take_seq_first(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SAVEPOINT") and not injected:
            injected.append(statement)
            connection.execute(sa.insert(AuditEntry).values(**stored(rival)))

    engine = journal.database.engine
    sa.event.listen(engine, "before_cursor_execute", take_seq_first)
    try:
        with journal.database.session(acme) as session:
            session.add(Run(id=uuid.uuid4(), tenant=acme, plan="etl", graph_hash="ab"))
            entry = audit.append(session, acme, "ada", "compile", "etl")
    finally:
        sa.event.remove(engine, "before_cursor_execute", take_seq_first)
    assert len(injected) == 1
    assert (entry.seq, entry.prev_hash) == (2, entry_hash(rival))
    assert [e.actor for e in journal.rows(acme)] == ["rival", "ada"]
    with journal.database.session(acme) as session:
        assert len(session.exec(select(Run)).all()) == 1
    assert journal.verify(acme).count == 2


def test_a_key_records_once_even_for_concurrent_appenders(journal: Journal) -> None:
    acme = journal.acme
    with journal.database.session(acme) as session:
        first = audit.append(session, acme, "ada", "deploy", "etl", key="deploy:1")
        again = audit.append(session, acme, "bob", "deploy", "etl", {"x": 1}, key="deploy:1")
    assert (again.id, again.actor, again.seq) == (first.id, "ada", 1)
    with journal.database.session(journal.globex) as session:
        other = audit.append(session, journal.globex, "ada", "deploy", "etl", key="deploy:1")
    assert other.id != first.id
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait(30)
            audit.record(journal.database, acme, "deploy", "etl", key="deploy:2", who="racer")
        except BaseException as error:  # reported below
            failures.append(error)

    workers = [threading.Thread(target=racer) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []
    assert [(e.seq, e.actor) for e in journal.rows(acme)] == [(1, "ada"), (2, "racer")]
    assert journal.verify(acme).count == 2


def test_entries_since_a_time(journal: Journal) -> None:
    acme = journal.acme
    journal.append_many(acme, 3)
    middle = journal.rows(acme)[1].time
    journal.append_many(acme, 2, start=3)
    in_paris = middle.astimezone(dt.timezone(dt.timedelta(hours=1)))
    with journal.database.session(acme) as session:
        since = [e.seq for e in audit.entries(session, acme, since=in_paris)]
        later = list(audit.entries(session, acme, since=dt.datetime.now(dt.UTC)))
    assert since == [2, 3, 4, 5]
    assert later == []


def test_unknown_actions_and_bad_tenants_are_refused(journal: Journal) -> None:
    acme = journal.acme
    with journal.database.session(acme) as session:
        with pytest.raises(ValueError, match="unknown audit action 'compiled'"):
            audit.append(session, acme, "ada", "compiled")
        with pytest.raises(TenantError):
            audit.append(session, "Acme", "ada", "compile")
        with pytest.raises(ValueError):
            audit.append(session, acme, "ada", "compile", detail={"x": float("inf")})


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


def parse_export(text: str, format: str) -> list[ChainEntry]:
    if format == "json":
        records = json.loads(text)
    elif format == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    else:
        records = list(csv.DictReader(io.StringIO(text, newline="")))
    return [ChainEntry.from_dict(record) for record in records]


@pytest.mark.parametrize("format", audit.EXPORT_FORMATS)
def test_exports_parse_back_into_a_chain_that_verifies(journal: Journal, format: Any) -> None:
    acme = journal.acme
    journal.append_many(acme, 4)
    audit.record(journal.database, acme, "deploy", 'etl,"quoted"\nline', {"é": "ü", "n": None})
    stream = io.StringIO(newline="")
    with journal.database.session(acme) as session:
        assert audit.export(audit.entries(session, acme), stream, format) == 5
    parsed = parse_export(stream.getvalue(), format)
    assert [entry_record(e) for e in parsed] == [entry_record(e) for e in journal.rows(acme)]
    assert verify_chain(parsed, acme) is None
    assert verify_chain([parsed[0], dataclasses.replace(parsed[1], actor="x")]) is not None


@pytest.mark.parametrize("format", audit.EXPORT_FORMATS)
def test_an_empty_export_parses(format: Any) -> None:
    stream = io.StringIO(newline="")
    assert audit.export([], stream, format) == 0
    assert parse_export(stream.getvalue(), format) == []
    with pytest.raises(ValueError, match="unknown export format"):
        audit.export([], stream, "xml")  # type: ignore[arg-type]
