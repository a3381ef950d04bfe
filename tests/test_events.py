"""The event bus without NATS: envelope, ids, subjects and patterns, the in-process bus, the
spool, the choice of backend, and the layering."""

from __future__ import annotations

import datetime as dt
import doctest
import importlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import plan2flow.events as events
from plan2flow.events import (
    Batched,
    Event,
    EventData,
    InProcessBus,
    InvalidEvent,
    InvalidSubject,
    NullBus,
    RunContext,
    SlowSubscriberError,
    decode_event,
    from_env,
    label_for,
    matches,
    new_event,
    register_event_type,
    subject_for,
)
from plan2flow.events.bus import Subscription
from plan2flow.events.kinds import TaskStarted, default_tenant
from plan2flow.events.spool import Spool
from plan2flow.events.subjects import check_pattern, from_wire, split_type, to_wire

RUN = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid="run-1")


# --- envelope ---------------------------------------------------------------------------------


def test_event_is_a_cloudevent_with_the_extension_attributes() -> None:
    event = RUN.task("started", "load", attempt=1, tasktype="shell")
    body = json.loads(event.to_json())
    assert body["specversion"] == "1.0"
    assert body["type"] == "plan2flow.task.started"
    assert body["subject"] == "plan2flow.acme.etl.task.started"
    assert body["source"] == "/plan2flow/acme/etl"
    assert body["datacontenttype"] == "application/json"
    assert body["dataschema"] == "urn:plan2flow:events:v1:plan2flow.task.started"
    assert {k: body[k] for k in ("tenant", "plan", "graphhash", "flowrunid", "taskid")} == {
        "tenant": "acme",
        "plan": "etl",
        "graphhash": "sha256:ab",
        "flowrunid": "run-1",
        "taskid": "load",
    }
    assert body["attempt"] == 1 and body["data"] == {"tasktype": "shell"}
    assert body["time"].endswith("Z") or body["time"].endswith("+00:00")
    assert event.to_json() == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert event.kind == "task" and event.name == "started"
    assert isinstance(event.data, TaskStarted)


def test_round_trip_keeps_the_typed_data() -> None:
    for event in (
        RUN.task("failed", "load", attempt=2, message="boom", state="TimedOut"),
        RUN.task("not_run", "after", upstream=["load"], message="not run"),
        RUN.flow("failed", failed=["load"], not_run=["after"]),
        RUN.event("plan2flow.artifact.stored", taskid="load", name="raw", path="/x", digest="d"),
    ):
        again = decode_event(event.to_json())
        assert again == event
        assert type(again.data) is type(event.data)


def test_ids_are_deterministic_per_transition() -> None:
    first = RUN.task("started", "load", attempt=1)
    assert RUN.task("started", "load", attempt=1).id == first.id
    others = {
        RUN.task("started", "load", attempt=2).id,
        RUN.task("retrying", "load", attempt=1).id,
        RUN.task("started", "other", attempt=1).id,
        RunContext("acme", "etl", "sha256:ab", "run-2").task("started", "load").id,
        RunContext("globex", "etl", "sha256:ab", "run-1").task("started", "load").id,
    }
    assert first.id not in others and len(others) == 5
    stored = RUN.event("plan2flow.artifact.stored", taskid="t", name="a", path="/p", digest="x")
    other = RUN.event("plan2flow.artifact.stored", taskid="t", name="b", path="/p", digest="x")
    assert stored.id != other.id


def test_health_events_get_fresh_ids() -> None:
    one = new_event(
        "plan2flow.agent.health", tenant="acme", plan="x", data={"agent": "a", "healthy": True}
    )
    two = new_event(
        "plan2flow.agent.health", tenant="acme", plan="x", data={"agent": "a", "healthy": True}
    )
    assert one.id != two.id
    assert (
        new_event(
            "plan2flow.agent.health",
            tenant="acme",
            plan="x",
            id="given",
            data={"agent": "a", "healthy": False},
        ).id
        == "given"
    )


def test_typed_data_is_checked() -> None:
    with pytest.raises(InvalidEvent, match=re.escape("plan2flow.task.started")):
        RUN.task("started", "load", unknown=1)
    with pytest.raises(InvalidEvent, match="tasktype"):
        decode_event(json.loads(RUN.task("started", "load").to_json()) | {"data": {"tasktype": 3}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object but list"),
        (b"{}", "invalid event: id: Field required"),
    ],
)
def test_decode_says_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        decode_event(raw)


def test_envelope_consistency_is_checked() -> None:
    body = json.loads(RUN.task("started", "load").to_json())
    with pytest.raises(
        InvalidEvent, match=re.escape("should be 'plan2flow.acme.etl.task.started'")
    ):
        decode_event(body | {"subject": "plan2flow.acme.etl.task.failed"})
    with pytest.raises(InvalidEvent, match="specversion"):
        decode_event(body | {"specversion": "0.3"})
    with pytest.raises(InvalidEvent, match="UTC offset"):
        decode_event(body | {"time": "2026-01-01T00:00:00"})
    with pytest.raises(InvalidEvent, match="Extra inputs are not permitted"):
        decode_event(body | {"surprise": 1})


def test_unregistered_types_keep_plain_data() -> None:
    event = new_event("plan2flow.escalation.raised", tenant="acme", plan="etl", data={"to": "x"})
    assert event.data == {"to": "x"}
    assert decode_event(event.to_json()) == event


def test_registry_is_extensible_and_consistent() -> None:
    class Approved(EventData):
        by: str

    register_event_type("plan2flow.approval.granted", Approved)
    register_event_type("plan2flow.approval.granted", Approved)  # same again: fine
    assert "plan2flow.approval.granted" in events.event_types()
    assert events.event_type("plan2flow.approval.granted") is not None
    event = RUN.event("plan2flow.approval.granted", by="ops")
    assert isinstance(decode_event(event.to_json()).data, Approved)

    class Other(EventData):
        by: str

    with pytest.raises(ValueError, match="already registered with Approved"):
        register_event_type("plan2flow.approval.granted", Other)
    with pytest.raises(ValueError, match="identity field 'nope'"):
        register_event_type("plan2flow.approval.denied", Approved, identity=("nope",))
    with pytest.raises(InvalidSubject, match=re.escape("is not 'plan2flow.<kind>.<event>'")):
        register_event_type("approval.granted", Approved)


def test_event_time_can_be_given() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    event = new_event("plan2flow.flow.started", tenant="acme", plan="etl", time=when)
    assert event.time == when and event.data == events.kinds.FlowStarted()


def test_default_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAN2FLOW_TENANT", raising=False)
    assert default_tenant() == "default"
    monkeypatch.setenv("PLAN2FLOW_TENANT", "acme")
    assert default_tenant() == "acme"
    monkeypatch.setenv("PLAN2FLOW_TENANT", "Acme.Corp")
    with pytest.raises(
        InvalidSubject, match=re.escape("PLAN2FLOW_TENANT 'Acme.Corp' is not a DNS label")
    ):
        default_tenant()


# --- subjects and patterns --------------------------------------------------------------------


def test_subjects_and_labels() -> None:
    assert (
        subject_for("acme", "etl", "plan2flow.flow.completed")
        == "plan2flow.acme.etl.flow.completed"
    )
    with pytest.raises(InvalidSubject, match=re.escape("tenant 'a.b' is not a DNS label")):
        subject_for("a.b", "etl", "plan2flow.flow.completed")
    with pytest.raises(InvalidSubject):
        RunContext("UPPER", "etl", None, "r")
    assert label_for("etl") == "etl"
    assert label_for("My_Plan") != label_for("my-plan")
    assert label_for("___").startswith("p-")
    assert len(label_for("x" * 200 + "_")) <= 63
    with pytest.raises(InvalidSubject):
        split_type("plan2flow.task.a.b")


@pytest.mark.parametrize("pattern", ["a.>.b", "a..b", "a.b*", "", "a. .b", "a.>x"])
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(InvalidSubject):
        check_pattern(pattern)


def test_wire_mapping() -> None:
    assert to_wire("plan2flow.acme.>", "t1") == "t1.acme.>"
    assert to_wire("*.acme.*.task.*", "t1") == "t1.acme.*.task.*"
    assert to_wire(">", "t1") == "t1.>"
    assert to_wire("plan2flow", "t1") == "t1"
    assert from_wire("t1.acme.etl.task.started", "t1") == "plan2flow.acme.etl.task.started"
    assert from_wire("t1", "t1") == "plan2flow"
    with pytest.raises(InvalidSubject):
        to_wire("other.>", "t1")
    with pytest.raises(InvalidSubject):
        from_wire("other.x", "t1")


def _reference(pattern: list[str], subject: list[str]) -> bool:
    """NATS's sublist semantics, written as a recursion (an independent implementation)."""
    if not pattern:
        return not subject
    head, rest = pattern[0], pattern[1:]
    if head == ">":
        return len(subject) >= 1
    if not subject:
        return False
    return (head == "*" or head == subject[0]) and _reference(rest, subject[1:])


TOKENS = st.sampled_from(["plan2flow", "acme", "etl", "task", "started", "a", "b"])


@given(
    st.lists(st.one_of(TOKENS, st.just("*")), min_size=1, max_size=6),
    st.booleans(),
    st.lists(TOKENS, min_size=1, max_size=7),
)
def test_matching_is_nats_semantics(pattern: list[str], tail: bool, subject: list[str]) -> None:
    tokens = [*pattern, ">"] if tail else pattern
    assert matches(".".join(tokens), ".".join(subject)) == _reference(tokens, subject)


def test_matching_examples_from_the_notes() -> None:
    assert matches("plan2flow.*.task.*", "plan2flow.acme.task.started")
    assert not matches("plan2flow.*.task.*", "plan2flow.acme.task.retry.scheduled")
    assert matches("plan2flow.acme.>", "plan2flow.acme.task.retry.scheduled")
    assert not matches("plan2flow.acme.>", "plan2flow.acme")
    assert matches(">", "a") and not matches("a.*", "a")


# --- the in-process bus -----------------------------------------------------------------------


def _events(n: int, plan: str = "etl", tenant: str = "acme") -> list[Event]:
    run = RunContext(tenant, plan, None, "r")
    return [run.task("started", f"t{i}") for i in range(n)]


def test_in_process_wildcards_and_order() -> None:
    bus = InProcessBus()
    every = bus.subscribe(">")
    tasks = bus.subscribe("plan2flow.*.*.task.*")
    acme = bus.subscribe("plan2flow.acme.>")
    flows = bus.subscribe("plan2flow.*.*.flow.>")
    published = [*_events(50), *_events(50, tenant="globex"), RUN.flow("started")]
    assert [bus.publish(e) for e in published] == ["published"] * 101
    assert [every.get(1) for _ in range(101)] == published
    assert [tasks.get(1) for _ in range(100)] == published[:100]
    got = [acme.get(1) for _ in range(51)]
    assert got == published[:50] + published[100:]
    assert flows.get(1) == published[-1] and flows.get(0.01) is None
    assert bus.stats()["published"] == 101
    bus.close()
    assert every.get(0.01) is None and list(every) == []


def test_in_process_order_per_subject_with_many_publishers() -> None:
    bus = InProcessBus()
    seen: list[Event] = []
    sub = bus.subscribe("plan2flow.>", seen.append)
    per_thread = {
        name: [RunContext("acme", name, None, "r").task("started", f"t{i}") for i in range(300)]
        for name in ("a", "b", "c", "d")
    }
    threads = [
        threading.Thread(target=lambda evs=evs: [bus.publish(e) for e in evs])
        for evs in per_thread.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sub.wait_handled(1200, 10)
    for name, evs in per_thread.items():
        assert [e for e in seen if e.plan == name] == evs
    sub.close()


def test_in_process_dedupe_of_a_republished_id() -> None:
    bus = InProcessBus(dedupe_window=2)
    sub = bus.subscribe(">")
    a, b, c = _events(3)
    assert [bus.publish(x) for x in (a, a, b, c, a)] == [
        "published",
        "duplicate",
        "published",
        "published",
        "published",  # outside the window of 2
    ]
    assert bus.stats()["duplicates"] == 1
    assert [sub.get(1) for _ in range(4)] == [a, b, c, a]


def test_slow_subscriber_blocks_then_reports(caplog: pytest.LogCaptureFixture) -> None:
    bus = InProcessBus()
    slow = bus.subscribe(">", max_pending=2, block_seconds=0.05)
    fast = bus.subscribe(">")
    evs = _events(4)
    started = time.monotonic()
    assert [bus.publish(e) for e in evs] == ["published"] * 4
    assert time.monotonic() - started >= 0.1  # blocked twice, up to the limit each time
    assert slow.dropped == 2 and slow.pending == 2 and fast.pending == 4
    assert "is full (2 pending) after 0.05s" in caplog.text
    assert [s["dropped"] for s in bus.stats()["subscriptions"]] == [2, 0]


def test_slow_subscriber_can_raise() -> None:
    bus = InProcessBus()
    bus.subscribe(">", max_pending=1, block_seconds=0.01, overflow="raise")
    evs = _events(2)
    bus.publish(evs[0])
    with pytest.raises(SlowSubscriberError, match="not delivered to it"):
        bus.publish(evs[1])


def test_blocked_publisher_proceeds_when_the_subscriber_catches_up() -> None:
    bus = InProcessBus()
    gate = threading.Event()
    handled: list[Event] = []

    def handler(event: Event) -> None:
        gate.wait(5)
        handled.append(event)

    sub = bus.subscribe(">", handler, max_pending=1, block_seconds=5)
    evs = _events(3)
    threading.Timer(0.1, gate.set).start()
    assert [bus.publish(e) for e in evs] == ["published"] * 3
    assert sub.wait_handled(3, 5) and handled == evs and sub.dropped == 0
    sub.close()


def test_handler_errors_are_counted_and_the_next_event_follows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InProcessBus()
    handled: list[str] = []

    def handler(event: Event) -> None:
        if event.taskid == "t0":
            raise RuntimeError("bad")
        handled.append(str(event.taskid))

    sub = bus.subscribe(">", handler)
    for event in _events(3):
        bus.publish(event)
    assert sub.wait_handled(3, 5)
    assert handled == ["t1", "t2"] and sub.errors == 1
    assert "event handler of '>' failed" in caplog.text
    sub.close()
    sub.close()


def test_a_batched_handler_gets_what_is_queued_together_in_order() -> None:
    """While the handler works on the first event, the next ones queue; the next call takes
    them all (up to max_batch), and closing hands over what is still queued."""
    bus = InProcessBus()
    first_taken, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def handle(events: Sequence[Event]) -> int | None:
        batches.append([str(event.taskid) for event in events])
        first_taken.set()
        release.wait(10)
        return 1 if len(batches) == 2 else None

    sub = bus.subscribe(">", Batched(handle, max_batch=3))
    evs = _events(6)
    bus.publish(evs[0])
    assert first_taken.wait(10)
    for event in evs[1:]:
        bus.publish(event)
    release.set()
    assert sub.wait_handled(6, 10)
    assert batches == [["t0"], ["t1", "t2", "t3"], ["t4", "t5"]]
    assert sub.errors == 1  # what the second call said it failed on
    sub.close()
    with pytest.raises(ValueError, match="max_batch"):
        Batched(handle, max_batch=0)


def test_a_failing_batch_counts_each_of_its_events_and_close_drains_the_queue() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def handle(events: Sequence[Event]) -> int | None:
        gate.wait(10)
        seen.append(len(events))
        raise RuntimeError("database down")

    sub = Subscription(">", Batched(handle, max_batch=10), max_pending=10)
    for event in _events(4):
        sub.offer(event)
    gate.set()
    sub.close()  # the end marker comes after the queued events: they are handled first
    assert sum(seen) == 4 and sub.errors == 4 and sub.delivered == 4


def test_closing_a_full_subscription_with_a_handler_stops_it() -> None:
    gate = threading.Event()
    sub = Subscription(">", lambda e: gate.wait(5), max_pending=1, block_seconds=1)
    evs = _events(2)
    sub.offer(evs[0])
    sub.offer(evs[1])
    gate.set()
    sub.close()
    assert sub.closed
    with pytest.raises(ValueError):
        Subscription(">", max_pending=0)


def test_null_bus_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    off = from_env({"PLAN2FLOW_EVENTS": "off"})
    assert isinstance(off, NullBus)
    assert off.publish(RUN.flow("started")) == "off" and off.stats() == {"backend": "off"}
    off.subscribe(">").close()
    off.close()
    assert from_env({}) is from_env({}) is events.process_bus()
    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    assert from_env() is events.process_bus()


def test_tail_follows_the_in_process_bus() -> None:
    from plan2flow.events.admin import tail

    bus = InProcessBus()
    evs = _events(3)
    threading.Timer(0.05, lambda: [bus.publish(e) for e in evs]).start()
    assert list(tail("plan2flow.acme.>", bus=bus, limit=3, timeout=5)) == evs
    assert list(tail(">", bus=bus, timeout=0.01)) == []


def test_nats_only_operations_say_they_need_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    from plan2flow.events import admin

    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    with pytest.raises(
        events.NatsRequired, match="replay needs the NATS bus: set PLAN2FLOW_EVENTS_URL"
    ):
        list(admin.replay(from_seq=1))
    for call in (admin.dlq_list, admin.flush, admin.stats):
        with pytest.raises(events.NatsRequired):
            call()
    with pytest.raises(events.NatsRequired):
        admin.dlq_show(1)
    with pytest.raises(events.NatsRequired):
        admin.dlq_retry()
    with pytest.raises(events.NatsRequired):
        admin.dlq_purge()


# --- the spool --------------------------------------------------------------------------------


def test_spool_appends_and_flushes_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    assert spool.is_empty() and spool.pending() == 0
    evs = _events(7)
    assert all(spool.append(e) for e in evs)
    assert spool.pending() == 7 and spool.read() == evs
    batches: list[list[Event]] = []

    def publish(batch: list[Event]) -> list[bool]:
        batches.append(list(batch))
        return [e.taskid == "t0" for e in batch]

    report = spool.flush(publish, batch=3)  # type: ignore[arg-type]
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [e for b in batches for e in b] == evs
    assert (report.published, report.duplicates, report.remaining) == (6, 1, 0)
    assert spool.is_empty() and spool.path.stat().st_size == 0


def test_spool_keeps_what_a_failed_flush_did_not_publish(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    evs = _events(5)
    for event in evs:
        spool.append(event)
    calls = 0

    def flaky(batch: list[Event]) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("down")
        return [False] * len(batch)

    report = spool.flush(flaky, batch=2)  # type: ignore[arg-type]
    assert (report.published, report.remaining) == (2, 3)
    assert spool.read() == evs[2:]
    again = Spool(tmp_path).flush(lambda b: [False] * len(b))
    assert again.published == 3 and spool.is_empty()


def test_spool_is_bounded(tmp_path: Path) -> None:
    evs = _events(3)
    spool = Spool(tmp_path, max_bytes=len(evs[0].to_json()) * 2 + 2)
    assert [spool.append(e) for e in evs] == [True, True, False]
    assert spool.dropped == 1 and spool.pending() == 2


def test_spool_survives_a_torn_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    evs = _events(3)
    spool.append(evs[0])
    with open(spool.path, "ab") as file:
        file.write(b'{"torn": ')  # a crash in the middle of an append
    spool.append(evs[1])
    spool.append(evs[2])
    assert spool.read() == evs
    report = spool.flush(lambda b: [False] * len(b))
    assert (report.published, report.corrupt) == (3, 1)


def test_spool_drops_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.directory.mkdir(exist_ok=True)
    spool.path.write_bytes(b'{"torn')
    assert spool.flush(lambda b: [False] * len(b)).published == 0
    assert spool.is_empty()
    spool.path.write_bytes(b"garbage\n")
    assert spool.flush(lambda b: [False] * len(b)).corrupt == 1


# --- layering and documentation -----------------------------------------------------------


def test_events_imports_no_other_part_and_no_prefect() -> None:
    code = (
        "import sys, plan2flow.events, plan2flow.events.admin, plan2flow.events.consume;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'"
        " or m.startswith(('plan2flow.compiler', 'plan2flow.flows', 'plan2flow.agents'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_compiler_does_not_import_events() -> None:
    code = "import sys, plan2flow.cli; print('plan2flow.events' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_public_api_is_sorted_and_complete() -> None:
    assert events.__all__ == sorted(events.__all__)
    assert all(hasattr(events, name) for name in events.__all__)


def test_package_is_listed_for_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert setuptools["package-dir"]["plan2flow.events"] == "events"
    assert "plan2flow.events" in setuptools["packages"]


@pytest.mark.parametrize(
    "module", ["subjects", "envelope", "kinds"], ids=lambda name: f"plan2flow.events.{name}"
)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"plan2flow.events.{module}"))
    assert result.attempted > 0 and result.failed == 0
