"""The audit journal fed from the event bus: a run's events on the in-process bus become
entries, in order, without parameter values; a redelivered event is recorded once; the durable
NATS follower feeds the same way and a second pass over the stream adds nothing."""

from __future__ import annotations

import threading

import pytest
from audit_db import Journal, journal
from events_nats import shared

from plan2flow.events import Event, InProcessBus, RunContext
from plan2flow.events.jetstream import JetStreamBus, NatsSettings
from plan2flow.events.kinds import FLOW_EVENTS, TASK_EVENTS
from plan2flow.memory import audit
from plan2flow.memory.audit_feed import (
    attach_audit,
    audit_fields,
    batch_handler,
    durable_name,
    feed_handler,
    follow,
    keyed_entries,
)

__all__ = ["journal", "shared"]  # the fixtures


def a_run(tenant: str, run: str = "r1") -> list[Event]:
    """The events of a small run, as the runtime publishes them, and a health probe."""
    ctx = RunContext(tenant=tenant, plan="etl", graphhash="sha256:ab", flowrunid=run)
    return [
        ctx.flow("started", tasks=2, parameters={"password": "s3cret", "day": "mon"}),
        ctx.task("started", "load", tasktype="shell"),
        ctx.event(
            "plan2flow.artifact.stored",
            taskid="load",
            attempt=1,
            name="out.csv",
            path="/tmp/out.csv",
            digest="ab" * 32,
            size=3,
        ),
        ctx.task("completed", "load", duration_seconds=0.5),
        ctx.event("plan2flow.agent.health", agent="coder", healthy=True),
        ctx.task("not_run", "report", upstream=["load"]),
        ctx.flow("completed", tasks=2),
    ]


EXPECTED = [
    ("run.started", "etl"),
    ("task.started", "etl/load"),
    ("artifact.stored", "etl/out.csv"),
    ("task.completed", "etl/load"),
    ("task.not_run", "etl/report"),
    ("run.completed", "etl"),
]


def test_every_run_and_task_event_type_has_an_action() -> None:
    ctx = RunContext(tenant="acme", plan="etl", graphhash=None, flowrunid="r1")
    for name in TASK_EVENTS:
        fields = audit_fields(ctx.task(name, "load"))
        assert fields is not None and fields.action in audit.ACTIONS
    for name in FLOW_EVENTS:
        fields = audit_fields(ctx.flow(name))
        assert fields is not None and fields.action in audit.ACTIONS


def test_a_runs_events_on_the_in_process_bus_become_entries(journal: Journal) -> None:
    acme = journal.acme
    bus = InProcessBus()
    subscription = attach_audit(bus, journal.database, acme, who="runner")
    try:
        events = a_run(acme) + a_run(journal.globex)
        for event in events:
            assert bus.publish(event) == "published"
        assert subscription.wait_handled(len(a_run(acme)), timeout=60)
        assert subscription.errors == 0
    finally:
        subscription.close()
    entries = journal.rows(acme)
    assert [(e.action, e.subject) for e in entries] == EXPECTED
    assert {e.actor for e in entries} == {"runner"}
    assert journal.rows(journal.globex) == []
    started = entries[0].detail
    assert started["event_id"] == events[0].id
    assert (started["run"], started["plan"], started["event_type"]) == (
        "r1",
        "etl",
        "plan2flow.flow.started",
    )
    assert started["data"] == {"tasks": 2, "parameters": ["day", "password"]}
    assert all("s3cret" not in str(e.detail) for e in entries)
    assert entries[1].detail["task"] == "load" and entries[1].detail["attempt"] == 1
    assert journal.verify(acme).count == len(EXPECTED)


@pytest.mark.slow
def test_an_event_the_journal_refuses_costs_no_other_event_its_entry(journal: Journal) -> None:
    """A batch that fails is recorded again one event at a time: the refused event is counted
    in the subscription's errors, every other one gets its entry, in order."""
    if journal.dialect == "sqlite":
        journal.raw(
            "CREATE TRIGGER refuse_load BEFORE INSERT ON audit_entries "
            "WHEN NEW.subject = 'etl/load' AND NEW.action = 'task.completed' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    else:
        journal.raw(
            "CREATE FUNCTION refuse_load() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.subject = 'etl/load' AND NEW.action = 'task.completed' "
            "AND NEW.tenant = '" + journal.acme + "' THEN RAISE EXCEPTION 'refused by the test'; "
            "END IF; RETURN NEW; END $$"
        )
        journal.raw(
            "CREATE TRIGGER refuse_load BEFORE INSERT ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION refuse_load()"
        )
    acme = journal.acme
    handle = batch_handler(journal.database, acme, "runner")
    try:
        assert handle(a_run(acme)) == 1
    finally:
        if journal.dialect != "sqlite":
            journal.raw("DROP TRIGGER refuse_load ON audit_entries")
            journal.raw("DROP FUNCTION refuse_load()")
    expected = [entry for entry in EXPECTED if entry != ("task.completed", "etl/load")]
    assert [(e.action, e.subject) for e in journal.rows(acme)] == expected
    assert handle(a_run(journal.globex)) is None  # another tenant's events: nothing to do
    assert journal.verify(acme).count == len(expected)


def test_a_batch_appends_each_key_once_and_keeps_the_chain(journal: Journal) -> None:
    """Keys already in the journal, and keys repeated in the batch, add nothing; the rest
    continue the chain in order."""
    acme = journal.acme
    events = a_run(acme)
    handle = batch_handler(journal.database, acme, "runner")
    assert handle(events[:2]) is None
    with journal.database.session(acme) as session:
        added = audit.append_keyed(session, acme, "runner", keyed_entries(events + events[3:]))
        assert audit.append_keyed(session, acme, "runner", []) == []
    assert [entry.action for entry in added] == [action for action, _ in EXPECTED[2:]]
    assert [entry.seq for entry in added] == [3, 4, 5, 6]
    assert [(e.action, e.subject) for e in journal.rows(acme)] == EXPECTED
    assert journal.verify(acme).count == len(EXPECTED)
    with journal.database.session(acme) as session, pytest.raises(ValueError, match="unknown"):
        audit.append_keyed(session, acme, "runner", [audit.KeyedEntry("nope", "", {}, "k")])


def test_a_redelivered_event_is_recorded_once(journal: Journal) -> None:
    acme = journal.acme
    bus = InProcessBus(dedupe_window=0)  # delivers a re-published id again, as NATS may
    subscription = attach_audit(bus, journal.database, acme)
    try:
        for event in a_run(acme) + a_run(acme):
            bus.publish(event)
        assert subscription.wait_handled(2 * len(a_run(acme)), timeout=60)
        assert subscription.errors == 0
    finally:
        subscription.close()
    assert [(e.action, e.subject) for e in journal.rows(acme)] == EXPECTED


def test_two_feeds_handling_the_same_events_at_once_record_each_once(journal: Journal) -> None:
    """A run's own feed and a follower see the same events at the same time."""
    acme = journal.acme
    events = a_run(acme)
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def feed() -> None:
        handle = feed_handler(journal.database, acme, "feeder")
        try:
            barrier.wait(30)
            for event in events:
                handle(event)
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=feed) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert failures == []
    assert sorted((e.action, e.subject) for e in journal.rows(acme)) == sorted(EXPECTED)
    assert journal.verify(acme).count == len(EXPECTED)


@pytest.mark.slow
def test_the_durable_follower_feeds_from_nats_and_a_replay_adds_nothing(
    journal: Journal, shared: NatsSettings
) -> None:
    acme, database = journal.acme, journal.database
    bus = JetStreamBus(shared)
    try:
        for event in a_run(acme) + a_run(acme, run="r2") + a_run(journal.globex):
            assert bus.publish(event) == "published"
    finally:
        bus.close()
    report = follow(database, acme, shared, who="follower", idle_exit=0.5)
    assert (report.handled, report.failed, report.dead_lettered) == (14, 0, 0)
    expected = EXPECTED * 2
    assert [(e.action, e.subject) for e in journal.rows(acme)] == expected
    assert {e.actor for e in journal.rows(acme)} == {"follower"}
    again = follow(database, acme, shared, idle_exit=0.5, durable="audit-replay")
    assert again.handled == 14
    assert len(journal.rows(acme)) == len(expected)
    assert journal.rows(journal.globex) == []
    assert durable_name(acme) == f"plan2flow-audit-{acme}"
    resumed = follow(database, acme, shared, idle_exit=0.5)
    assert resumed.handled == 0  # the durable consumer resumes after what it acked
