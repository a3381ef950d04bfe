"""The event bus under faults, on NATS servers of the tests' own: the bus down during a run,
kill -9 of a consumer, kill -9 of the server under 10,000 acked publishes, a 3-node cluster
losing its stream leader."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from events_nats import (
    Proxy,
    Server,
    need_binary,
    own_cluster,
    own_server,
    private_settings,
    wait_until,
)

from plan2flow.events import BusUnavailable, Event, RunContext, admin
from plan2flow.events.jetstream import JetStreamBus, NatsSettings, check_server, connect

pytestmark = pytest.mark.slow


def _events(n: int, prefix: str = "t", run: str = "r1") -> list[Event]:
    context = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid=run)
    return [context.task("started", f"{prefix}{i}") for i in range(n)]


def _stored(settings: NatsSettings) -> list[Event]:
    records = list(admin.replay(from_seq=1, settings=settings, batch=1000))
    assert all(r.event is not None for r in records)
    return [r.event for r in records if r.event is not None]


def assert_same_order(stored: list[Event], published: list[Event]) -> None:
    """The stream holds exactly the published events in order; on failure, says where they
    part (a diff of 10,000 events would take pytest minutes to print)."""
    got, want = [e.id for e in stored], [e.id for e in published]
    if got != want:
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        at = min(len(got), len(want)) if at is None else at
        raise AssertionError(
            f"{len(got)} stored, {len(want)} published; they part at position {at}: "
            f"{got[at : at + 3]} stored where {want[at : at + 3]} were published"
        )


def test_bus_down_from_the_start_spools_and_flushes_each_event_once(tmp_path: Path) -> None:
    need_binary()
    server = Server(tmp_path / "store")
    settings = private_settings(server.url, tmp_path / "spool", publish_timeout=1.0)
    evs = _events(300)
    started = time.monotonic()
    bus = JetStreamBus(settings, connect_wait=0.2)
    outcomes = [bus.publish(e) for e in evs[:200]]
    assert outcomes == ["spooled"] * 200
    # A bound, not a speed: publishes that each waited their 1 s timeout would take 200 s.
    assert time.monotonic() - started < 100  # never waits for the bus
    assert bus.stats()["spool_pending"] == 200
    server.start()
    try:
        assert bus.wait_connected(20) and bus.wait_flushed(20)
        assert [bus.publish(e) for e in evs[200:]] == ["published"] * 100
        assert bus.stats()["flushed"] == 200
        bus.close()
        assert_same_order(_stored(settings), evs)
    finally:
        bus.close()
        server.kill()


def test_bus_stopped_during_a_run_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    need_binary()
    with own_server(tmp_path) as server:
        settings = private_settings(server.url, tmp_path / "spool", publish_timeout=1.0)
        bus = JetStreamBus(settings)
        evs = _events(400)
        assert [bus.publish(e) for e in evs[:100]] == ["published"] * 100
        server.kill()
        started = time.monotonic()
        outcomes = [bus.publish(e) for e in evs[100:300]]
        # Handed to the connection before the client noticed the loss ("published"), or after
        # ("spooled"): either way, once their acks fail to come, all of them are in the spool.
        assert set(outcomes) <= {"published", "spooled"}
        assert time.monotonic() - started < 100  # 200 publishes never wait 1 s each
        wait_until(lambda: bus.in_flight == 0, 10, "the events in flight to be spooled")
        counts = {
            "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
            **{k: getattr(bus, k) for k in ("published", "acked", "spooled", "dropped", "flushed")},
            "problem": bus.problem,
            "server_exit": server.process.poll() if server.process else None,
        }
        assert bus.spool.pending() >= 200, counts
        server.start()  # the same store
        assert bus.wait_flushed(30)
        outcomes = [bus.publish(e) for e in evs[300:]]
        assert set(outcomes) <= {"published", "spooled"}
        assert bus.wait_flushed(30)
        bus.close()
        stored = _stored(settings)
        assert_same_order(stored, evs)
        assert len({e.id for e in stored}) == 400


def test_flush_publishes_another_process_spool_in_order_once(tmp_path: Path) -> None:
    need_binary()
    server = Server(tmp_path / "store")
    settings = private_settings(server.url, tmp_path / "spool")
    bus = JetStreamBus(settings, connect_wait=0.1)
    evs = _events(50)
    assert {bus.publish(e) for e in evs} == {"spooled"}
    bus.close(timeout=0.5)
    server.start()
    try:
        # Ten of them reached the stream some other way (a publish whose ack was lost).
        async def publish_some() -> None:
            nc = await connect(settings)
            from plan2flow.events.acks import AckInbox
            from plan2flow.events.jetstream import ensure_streams, publish_batch

            await ensure_streams(nc.jetstream(), settings)
            await publish_batch(await AckInbox.open(nc), settings, evs[:10])
            await nc.close()

        asyncio.run(publish_some())
        report = admin.flush(settings)
        assert (report.published, report.duplicates, report.remaining) == (40, 10, 0)
        assert admin.flush(settings).published == 0
        assert_same_order(_stored(settings), evs)
        assert admin.stats(settings)["spool"]["pending"] == 0
    finally:
        server.kill()


CONSUMER = """
import json, sys, time
from pathlib import Path
from typing import Any
from plan2flow.events.consume import SeenIds, run_consumer
from plan2flow.events.jetstream import NatsSettings
raw = json.loads(sys.argv[1])
raw.update(servers=tuple(raw["servers"]), spool_dir=Path(raw["spool_dir"]))
settings = NatsSettings(**raw)
log = Path(sys.argv[2])
seen = SeenIds(Path(sys.argv[3]))
def handler(event, delivery):
    with log.open("a") as f:
        f.write(f"begin {event.id} {delivery.num_delivered}\\n")
    if event.taskid == "t3":
        time.sleep(600)
    with log.open("a") as f:
        f.write(f"done {event.id} {delivery.num_delivered}\\n")
run_consumer(settings, "worker", ">", handler, ack_wait=2, seen=seen)
"""


def test_consumer_killed_mid_message_gets_it_redelivered_and_handled_once(
    tmp_path: Path,
) -> None:
    from plan2flow.events.consume import Delivery, SeenIds, run_consumer

    with own_server(tmp_path) as server:
        settings = private_settings(server.url, tmp_path / "spool")
        bus = JetStreamBus(settings)
        evs = _events(6)
        for event in evs:
            bus.publish(event)
        bus.close()
        log = tmp_path / "handled.log"
        raw = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.__dict__.items()}
        child = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, json.dumps(raw), str(log), str(tmp_path / "seen")],
            start_new_session=True,
        )
        try:
            wait_until(
                lambda: log.exists() and f"begin {evs[3].id}" in log.read_text(),
                30,
                "the child consumer to begin t3",
            )
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        seen = SeenIds(tmp_path / "seen")
        redelivered: list[int] = []

        def handler(event: Event, delivery: Delivery) -> None:
            if event.id == evs[3].id:
                redelivered.append(delivery.num_delivered)
            with log.open("a") as file:
                file.write(f"done {event.id} {delivery.num_delivered}\n")

        run_consumer(settings, "worker", ">", handler, ack_wait=2, seen=seen, idle_exit=3)
        seen.close()
        done = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")]
        assert sorted(done) == sorted(e.id for e in evs)  # each handled exactly once
        assert redelivered == [2]


def test_server_killed_during_10000_acked_publishes_keeps_all_once(tmp_path: Path) -> None:
    need_binary()
    with own_server(tmp_path) as server:
        settings = private_settings(server.url, tmp_path / "spool", publish_timeout=1.0)
        bus = JetStreamBus(settings)
        evs = _events(10_000)
        outcomes: list[str] = []
        thread = threading.Thread(target=lambda: outcomes.extend(bus.publish(e) for e in evs))
        thread.start()
        # Stored either way: on a loaded machine an ack can take longer than the publish timeout,
        # and the bus then stores the events through its spool (a full run with four workers
        # counted acked publishes alone and timed out with 1,000 events spooled).
        wait_until(lambda: bus.published + bus.flushed >= 3000, 120, "3,000 stored events")
        server.kill()
        server.start()  # the same store and port
        # A deadline, not a speed: with both cores kept busy, the publisher still had events
        # to spool (each written with an fsync) after 120 s.
        thread.join(300)
        assert not thread.is_alive()
        assert bus.wait_flushed(120)
        bus.close()
        # Whether an in-flight publish was retried by the client's reconnect or spooled depends
        # on how fast the server is back; either way every event is stored once.
        assert set(outcomes) <= {"published", "spooled", "duplicate"}
        assert len(outcomes) == 10_000
        stored = _stored(settings)
        assert len(stored) == 10_000
        assert len({e.id for e in stored}) == 10_000
        assert_same_order(stored, evs)  # one publisher: the stream keeps its order


def test_a_broken_connection_holding_unsent_events_keeps_the_publish_order(
    tmp_path: Path,
) -> None:
    """The connection breaks while the client holds events it has not written, behind events
    it wrote that never arrived: the held ones must reach the stream through the spool, after
    the lost ones, not be re-sent by the client's reconnect ahead of them."""
    need_binary()
    with own_server(tmp_path) as server:
        proxy = Proxy(server.port)
        # No event waits long enough for its ack to be spooled before the cut.
        settings = private_settings(proxy.url, tmp_path / "spool", publish_timeout=60.0)
        bus = JetStreamBus(settings.with_(max_in_flight=40_000))
        evs = _events(40_000)
        try:
            assert [bus.publish(e) for e in evs[:100]] == ["published"] * 100
            assert bus.flush(30)
            proxy.hold()
            # Chunks until the socket takes no more: the client then holds the rest unsent.
            sent, held = 100, False
            while not held and sent < len(evs):
                assert {bus.publish(e) for e in evs[sent : sent + 500]} == {"published"}
                sent += 500
                try:
                    wait_until(lambda: bus.stats()["unsent_bytes"] == 0, 2, "room")
                except AssertionError:
                    held = True
            assert held, "the held connection took every event"
            proxy.cut()
            wait_until(lambda: bus.in_flight == 0, 30, "the events in flight to be spooled")
            assert bus.wait_flushed(60)
            bus.close()
            assert_same_order(_stored(settings.with_(servers=(server.url,))), evs[:sent])
        finally:
            bus.close()
            proxy.close()


def test_events_published_as_the_connection_breaks_keep_their_order(tmp_path: Path) -> None:
    """Events published while the client learns that its connection broke: those it spools at
    once must not go before the ones still in flight, which it spools as it gives up on them.
    The moment is a race, so several rounds."""
    need_binary()
    with own_server(tmp_path) as server:
        proxy = Proxy(server.port)
        try:
            for round_ in range(10):
                settings = private_settings(proxy.url, tmp_path / f"spool{round_}")
                bus = JetStreamBus(settings.with_(publish_timeout=5.0))
                evs = _events(600, run=f"r{round_}")
                try:
                    proxy.hold()  # in flight, unacknowledged
                    assert {bus.publish(e) for e in evs[:100]} == {"published"}
                    proxy.cut()
                    assert {bus.publish(e) for e in evs[100:]} <= {"published", "spooled"}
                    wait_until(lambda b=bus: b.in_flight == 0, 30, "the events in flight spooled")
                    assert bus.wait_flushed(60)
                finally:
                    bus.close()
                assert_same_order(_stored(settings.with_(servers=(server.url,))), evs)
        finally:
            proxy.close()


def _unlocked(path: Path) -> bool:
    """Whether no one holds the lock of a spool (events/spool.py takes it with flock)."""
    with path.open("a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(file, fcntl.LOCK_UN)
    return True


def test_events_in_flight_count_until_they_are_in_the_spool(tmp_path: Path) -> None:
    """`in_flight` falls to 0 only once the events it counted are in the spool: a caller that
    waits for it (as the tests above do) then finds them there, however slow the disk."""
    need_binary()
    with own_server(tmp_path) as server:
        proxy = Proxy(server.port)
        # Acks awaited far longer than the test: whatever is in flight stays so until it ends.
        bus = JetStreamBus(private_settings(proxy.url, tmp_path / "spool", publish_timeout=600.0))
        writing, written = threading.Event(), threading.Event()
        append_many = bus.spool.append_many
        given: list[int] = []

        def slow_disk(events: Any) -> int:
            given.append(len(events))
            writing.set()
            assert written.wait(30)
            return append_many(events)

        try:
            proxy.hold()  # in flight, unacknowledged
            assert {bus.publish(e) for e in _events(50)} == {"published"}
            bus.spool.append_many = slow_disk  # type: ignore[method-assign]
            giving_up = threading.Thread(target=bus.flush, args=(0.1,))
            giving_up.start()
            assert writing.wait(30)
            assert bus.in_flight == given[0] > 0  # being written: still in flight
            written.set()
            giving_up.join(30)
            assert bus.in_flight == 0
            # The bus now flushes its spool to the held server, under the spool's lock, for up
            # to publish_timeout: closing it ends that flush, and the events stay spooled.
            bus.close(timeout=0.5)
            wait_until(lambda: _unlocked(bus.spool.lock_path), 60, "the spool's lock released")
            assert bus.spool.pending() == given[0]
        finally:
            written.set()
            bus.close(timeout=0.5)
            proxy.close()


def test_cluster_of_three_loses_nothing_when_the_stream_leader_dies(tmp_path: Path) -> None:
    need_binary()
    with own_cluster(tmp_path) as servers:
        urls = tuple(s.url for s in servers)
        settings = private_settings(urls[0], tmp_path / "spool", publish_timeout=2.0).with_(
            servers=urls, replicas=3
        )
        bus = JetStreamBus(settings, connect_wait=40)
        assert bus.wait_connected(40)
        evs = _events(3000)
        outcomes: list[str] = []
        thread = threading.Thread(target=lambda: outcomes.extend(bus.publish(e) for e in evs))
        thread.start()
        wait_until(lambda: bus.published >= 1000, 60, "1,000 acked publishes")

        async def leader() -> str:
            nc = await connect(settings)
            info = await nc.jetstream().stream_info(settings.stream)
            await nc.close()
            assert info.cluster is not None and info.cluster.leader
            return str(info.cluster.leader)

        name = asyncio.run(leader())
        victim = next(s for s in servers if s.name == name)
        victim.kill()
        # A deadline, not a speed: with four workers on two cores, the publisher was still at
        # work 120 s after the kill while the survivors elected a leader.
        thread.join(300)
        assert not thread.is_alive()
        assert bus.wait_flushed(120)
        bus.close()
        survivors = settings.with_(servers=tuple(s.url for s in servers if s is not victim))
        found: list[Event] = []

        def replayed() -> bool:
            # A replay creates a consumer, which waits for the cluster's meta leader: when the
            # killed node led it too, the survivors may still be electing one.
            try:
                found[:] = _stored(survivors)
            except (nats.errors.TimeoutError, BusUnavailable):
                return False
            return True

        wait_until(replayed, 60, "a replay on the surviving nodes")
        stored = found
        assert len(stored) == 3000 and len({e.id for e in stored}) == 3000
        assert_same_order(stored, evs)


def test_jetstream_that_does_not_answer_yet_is_unavailable_not_missing(tmp_path: Path) -> None:
    """A server whose JetStream does not answer in time (a cluster electing its leader) is a
    bus to wait for (exit status 3), not a server to reconfigure (JetStream not enabled, 4)."""
    need_binary()
    with own_server(tmp_path) as server:
        proxy = Proxy(server.port)

        async def check() -> None:
            nc = await nats.connect(proxy.url, max_reconnect_attempts=0)
            proxy.hold()  # what the client asks reaches no server: no answer, no refusal
            await nc.flush()  # the relay passes on what it was waiting for, then holds
            try:
                await check_server(nc)
            finally:
                proxy.cut()
                await nc.close()

        try:
            with pytest.raises(BusUnavailable, match="did not answer in time") as raised:
                asyncio.run(check())
        finally:
            proxy.close()
    assert raised.value.exit_status == 3
