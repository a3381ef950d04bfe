"""The event bus on NATS JetStream (the machine's server, private streams per test): both
backends' wildcards and order, dedupe, replay, tail, the DLQ, strict order, stats, and the
server version check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from events_nats import need_shared_nats, private_settings, shared

from plan2flow.events import (
    BusUnavailable,
    Event,
    EventBus,
    InProcessBus,
    RunContext,
    UnsupportedServer,
    admin,
)
from plan2flow.events.consume import Delivery, SeenIds, run_consumer
from plan2flow.events.jetstream import JetStreamBus, NatsSettings, connect

__all__ = ["shared"]  # the fixture


def _run(tenant: str = "acme", plan: str = "etl", run: str = "r1") -> RunContext:
    return RunContext(tenant=tenant, plan=plan, graphhash="sha256:ab", flowrunid=run)


def _publish_raw(settings: NatsSettings, subject: str, data: bytes) -> int:
    async def main() -> int:
        nc = await connect(settings)
        try:
            ack = await nc.jetstream().publish(settings.wire(subject), data)
            return ack.seq
        finally:
            await nc.close()

    return asyncio.run(main())


@pytest.fixture(params=["memory", "nats"])
def any_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventBus]:
    if request.param == "memory":
        bus: EventBus = InProcessBus()
        yield bus
        bus.close()
        return
    settings = private_settings(need_shared_nats(), tmp_path / "spool")
    nats_bus = JetStreamBus(settings)
    try:
        yield nats_bus
    finally:
        nats_bus.close()
        from events_nats import delete_streams

        delete_streams(settings)


def test_wildcards_and_order_are_the_same_in_both_backends(any_bus: EventBus) -> None:
    patterns = [
        ">",
        "plan2flow.acme.>",
        "plan2flow.*.etl.task.*",
        "plan2flow.*.*.flow.completed",
        "*.globex.*.*.*",
        "plan2flow.acme.etl.task.started",
    ]
    subscriptions = {pattern: any_bus.subscribe(pattern) for pattern in patterns}
    published: list[Event] = []
    for tenant in ("acme", "globex"):
        run = _run(tenant=tenant)
        for index in range(20):
            published.append(run.task("started", f"t{index}"))
            published.append(run.task("completed", f"t{index}"))
        published.append(run.flow("completed", tasks=20))
    outcomes = [any_bus.publish(event) for event in published]
    assert outcomes == ["published"] * len(published)
    from plan2flow.events import matches

    for pattern, subscription in subscriptions.items():
        expected = [e for e in published if matches(pattern, e.subject)]
        got = [subscription.get(10) for _ in expected]
        assert got == expected, pattern
        assert subscription.get(0.05) is None
        subscription.close()


def test_republished_id_is_stored_once(shared: NatsSettings) -> None:
    bus = JetStreamBus(shared)
    try:
        event = _run().task("started", "load")
        assert bus.publish(event) == "published"
        assert bus.publish(event) == "duplicate"
        # the same transition built again: the same id
        assert bus.publish(_run().task("started", "load")) == "duplicate"
        assert bus.stats()["duplicates"] == 2
    finally:
        bus.close()
    assert admin.stats(shared)["stream"]["messages"] == 1
    assert [s.event for s in admin.replay(from_seq=1, settings=shared)] == [event]


@pytest.mark.slow
def test_replay_from_a_sequence_and_from_a_time(shared: NatsSettings) -> None:
    bus = JetStreamBus(shared)
    run = _run()
    try:
        first = [run.task("started", f"a{i}") for i in range(5)]
        for event in first:
            bus.publish(event)
        time.sleep(0.05)  # the stored times of the two groups must differ
        middle = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        second = [run.task("started", f"b{i}") for i in range(4)] + [run.flow("completed")]
        for event in second:
            bus.publish(event)
    finally:
        bus.close()
    from_seq = list(admin.replay(from_seq=3, settings=shared))
    assert [s.seq for s in from_seq] == list(range(3, 11))
    assert [s.event for s in from_seq] == first[2:] + second
    assert [s.event for s in admin.replay(since=middle, settings=shared)] == second
    tasks = list(admin.replay("plan2flow.*.*.task.*", from_seq=1, settings=shared))
    assert [s.event for s in tasks] == first + second[:-1]
    assert list(admin.replay(from_seq=99, settings=shared)) == []
    record = from_seq[0].to_dict()
    assert record["seq"] == 3 and record["event"]["taskid"] == "a2" and record["error"] is None
    _publish_raw(shared, "plan2flow.acme.etl.task.started", b"not an event")
    last = list(admin.replay(from_seq=11, settings=shared))
    assert last[0].event is None and "not JSON" in str(last[0].error)
    with pytest.raises(ValueError, match="exactly one"):
        list(admin.replay(settings=shared))
    with pytest.raises(ValueError, match="UTC offset"):
        list(admin.replay(since=dt.datetime(2026, 1, 1), settings=shared))


def test_tail_follows_new_events(shared: NatsSettings) -> None:
    bus = JetStreamBus(shared)
    bus.publish(_run().task("started", "old"))  # before the tail: not shown
    stop = threading.Event()
    sent: list[Event] = []

    def keep_publishing() -> None:
        index = 0
        while not stop.is_set() and index < 200:
            event = _run().task("started", f"t{index}")
            bus.publish(event)
            sent.append(event)
            index += 1
            time.sleep(0.05)

    thread = threading.Thread(target=keep_publishing)
    thread.start()
    try:
        got = list(admin.tail("plan2flow.acme.>", settings=shared, limit=3, timeout=10))
    finally:
        stop.set()
        thread.join()
        bus.close()
    assert len(got) == 3
    start = sent.index(got[0])
    assert got == sent[start : start + 3]
    assert list(admin.tail(">", settings=shared, timeout=0.2)) == []


@pytest.mark.slow
def test_poison_and_unparseable_messages_reach_the_dlq_and_retry_redelivers(
    shared: NatsSettings, tmp_path: Path
) -> None:
    run = _run()
    good, poison = run.task("started", "good"), run.task("started", "poison")
    bus = JetStreamBus(shared)
    bus.publish(good)
    bus.publish(poison)
    bus.close()
    garbage_seq = _publish_raw(shared, "plan2flow.acme.etl.task.started", b"{broken")
    calls: list[tuple[str | None, int]] = []

    def handler(event: Event, delivery: Delivery) -> None:
        calls.append((event.taskid, delivery.num_delivered))
        if event.taskid == "poison":
            raise RuntimeError("cannot handle poison")

    report = run_consumer(
        shared, "worker", "plan2flow.>", handler, ack_wait=5, max_deliver=3, idle_exit=0.5
    )
    assert calls.count(("good", 1)) == 1
    assert [c for c in calls if c[0] == "poison"] == [("poison", 1), ("poison", 2), ("poison", 3)]
    assert (report.handled, report.failed, report.dead_lettered) == (1, 3, 2)

    letters = admin.dlq_list(shared)  # in the order they were filed
    assert [(x.reason, x.original_seq, x.deliveries) for x in letters] == [
        ("unparseable", garbage_seq, 1),
        ("handler", 2, 3),
    ]
    garbage_letter, handler_letter = letters
    assert handler_letter.error == "RuntimeError: cannot handle poison"
    assert handler_letter.consumer == "worker" and handler_letter.event_id == poison.id
    assert handler_letter.subject == shared.wire(poison.subject)
    assert garbage_letter.error.startswith("not JSON") and garbage_letter.data == b"{broken"
    assert admin.dlq_show(handler_letter.seq, shared) == handler_letter
    assert handler_letter.to_dict()["data"] == poison.to_json().decode()
    with pytest.raises(KeyError, match="no dead letter 999"):
        admin.dlq_show(999, shared)
    assert admin.stats(shared)["dlq"]["messages"] == 2

    retried = admin.dlq_retry([handler_letter.seq], shared)
    assert [old for old, _ in retried] == [handler_letter.seq]
    handled: list[str | None] = []
    seen = SeenIds(tmp_path / "seen.db")
    report = run_consumer(
        shared,
        "worker",
        "plan2flow.>",
        lambda e, d: handled.append(e.taskid),
        seen=seen,
        idle_exit=0.5,
    )
    assert handled == ["poison"] and report.handled == 1
    assert [x.seq for x in admin.dlq_list(shared)] == [garbage_letter.seq]
    assert admin.dlq_purge([garbage_letter.seq, 12345], shared) == 1
    assert admin.dlq_list(shared) == []
    admin.dlq_retry(settings=shared)  # nothing left: nothing done
    seen.close()


@pytest.mark.slow
def test_deliveries_that_run_out_without_an_ack_reach_the_dlq(shared: NatsSettings) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig

    event = _run().task("started", "stuck")
    bus = JetStreamBus(shared)
    bus.publish(event)
    bus.close()

    async def take_twice_without_ack() -> None:
        nc = await connect(shared)
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            shared.wire(">"),
            durable="forgetful",
            stream=shared.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=0.5, max_deliver=2),
        )
        taken = 0
        deadline = time.monotonic() + 10
        while taken < 2 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                taken += len(await sub.fetch(1, timeout=1))
        # The server gives up on a message when it would deliver it again: to a pull request.
        info = await js.stream_info(shared.advisory_stream)
        while info.state.messages == 0 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                taken += len(await sub.fetch(1, timeout=0.3))
            info = await js.stream_info(shared.advisory_stream)
        await nc.close()
        assert taken == 2 and info.state.messages == 1

    asyncio.run(take_twice_without_ack())
    letters = admin.dlq_list(shared)
    assert [(x.reason, x.consumer, x.deliveries, x.event_id) for x in letters] == [
        ("max_deliver", "forgetful", 2, event.id)
    ]
    assert letters[0].error == "no ack after 2 deliveries"
    assert admin.dlq_list(shared) == letters  # moved once
    assert admin.dlq_purge(settings=shared) == 1


@pytest.mark.slow
def test_strict_order_handles_a_redelivery_before_what_follows(shared: NatsSettings) -> None:
    run = _run()
    bus = JetStreamBus(shared)
    for index in range(6):
        bus.publish(run.task("started", f"t{index}"))
    bus.close()
    order: list[str] = []
    failed = set()

    def handler(event: Event, delivery: Delivery) -> None:
        order.append(str(event.taskid))
        if event.taskid == "t1" and "t1" not in failed:
            failed.add("t1")
            raise RuntimeError("once")

    run_consumer(shared, "strict", ">", handler, strict_order=True, idle_exit=0.5)
    assert order == ["t0", "t1", "t1", "t2", "t3", "t4", "t5"]
    consumers = admin.stats(shared)["consumers"]
    assert [(c["name"], c["pending"], c["ack_pending"]) for c in consumers] == [("strict", 0, 0)]


def test_several_patterns_on_one_consumer_are_refused_before_2_10(shared: NatsSettings) -> None:
    version = admin.stats(shared)["server_version"]
    if tuple(int(p) for p in version.split(".")) >= (2, 10, 0):
        pytest.skip(f"nats-server {version} supports filter_subjects")
    with pytest.raises(UnsupportedServer, match=r"does not support filter_subjects .*2\.10\.0"):
        run_consumer(
            shared, "two", ["plan2flow.*.*.task.*", "plan2flow.*.*.flow.*"], lambda e, d: None
        )


@pytest.mark.slow
def test_unreachable_bus_is_a_clear_error_for_the_admin_functions(tmp_path: Path) -> None:
    from events_nats import free_port

    settings = private_settings(f"nats://127.0.0.1:{free_port()}", tmp_path, connect_timeout=0.5)
    with pytest.raises(BusUnavailable, match=r"no NATS server answers at nats://127\.0\.0\.1:"):
        admin.stats(settings)


def test_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "PLAN2FLOW_EVENTS_URL": "nats://a:4222, nats://b:4222",
        "PLAN2FLOW_EVENTS_REPLICAS": "3",
        "PLAN2FLOW_HOME": str(tmp_path),
    }
    settings = NatsSettings.from_env(env)
    assert settings.servers == ("nats://a:4222", "nats://b:4222")
    assert settings.replicas == 3 and settings.spool_dir == tmp_path / "events"
    assert admin.settings_from_env(env) == settings
    assert admin.settings_from_env({}) is None
    with pytest.raises(BusUnavailable, match="PLAN2FLOW_EVENTS_URL is not set"):
        NatsSettings.from_env({})


def test_from_env_gives_one_nats_bus_per_url(tmp_path: Path) -> None:
    from events_nats import own_server

    from plan2flow.events import bus as bus_module
    from plan2flow.events import from_env

    with own_server(tmp_path) as server:
        env = {"PLAN2FLOW_EVENTS_URL": server.url, "PLAN2FLOW_HOME": str(tmp_path)}
        bus = from_env(env)
        try:
            assert isinstance(bus, JetStreamBus) and from_env(env) is bus
            assert bus.stats()["connected"] is True and bus.settings.servers == (server.url,)
            assert bus.settings.stream == "PLAN2FLOW_EVENTS"
        finally:
            bus_module._NATS_BUSES.pop(server.url, None)
            bus.close()


def test_seen_ids(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "s.db")
    assert "a" not in seen and seen.add("a") and not seen.add("a") and "a" in seen
    seen.close()
    assert "a" in SeenIds(tmp_path / "s.db")


def test_background_acks_keep_order_bound_what_is_in_flight_and_flush_waits(
    shared: NatsSettings,
) -> None:
    bus = JetStreamBus(shared.with_(max_in_flight=5, acks="background"))
    events = [_run().task("started", f"t{index}") for index in range(200)]
    try:
        in_flight = []
        for event in events:
            assert bus.publish(event) == "published"
            in_flight.append(bus.in_flight)
        assert max(in_flight) <= 5
        assert bus.flush(10) is True
        stats = bus.stats()
        assert (stats["acks"], stats["acked"], stats["in_flight"]) == ("background", 200, 0)
        assert stats["spooled"] == 0
    finally:
        bus.close()
    assert [s.event for s in admin.replay(from_seq=1, settings=shared)] == events


@pytest.mark.parametrize("acks", ["background", "wait"])
def test_a_publish_after_close_goes_to_the_spool(shared: NatsSettings, acks: str) -> None:
    """A late publish (a thread still running at the process's end, after the bus closed at
    exit) never raises: the event waits in the spool for the next bus or `events flush`."""
    bus = JetStreamBus(shared.with_(acks=acks))
    assert bus.wait_connected(10)
    bus.close()
    event = _run().task("started", "late")
    assert bus.publish(event) == "spooled"
    assert [e.id for e in bus.spool.read()] == [event.id]
    assert admin.flush(shared).published == 1
