"""Event bus benchmark: publish and consume rates of both backends, and what events cost per
task.

Usage::

    python bench/events.py [--n 20000] [--tasks 1000] [--url nats://127.0.0.1:4222]

Prints one JSON line. Events are ``plan2flow.task.started`` of one run (about 450 bytes of
CloudEvents JSON each), built once before anything is timed, except where building is what is
measured:

* ``build_per_s``: ``RunContext.task(...)`` (pydantic validation, the uuid5 id, the subject);
* ``memory``: the in-process bus, one subscriber pattern ``plan2flow.>``. ``publish_per_s``
  with the subscriber's queue drained afterwards (``get``); ``json_round_trip_per_s`` adds
  ``to_json`` and ``decode_event`` per event (what crossing a process boundary costs);
* ``nats`` (only with ``--url``; private streams, deleted at the end):
  ``publish_per_s`` is ``JetStreamBus.publish`` as the runtime calls it (acks checked in the
  background, the default) followed by ``flush()``, which waits for every ack;
  ``publish_sync_per_s`` the same bus with ``acks="wait"`` (each publish waits for its ack);
  ``publish_async_per_s`` is ``publish_batch`` in batches of 500 (``Nats-Msg-Id`` on each,
  every ack awaited), ``consume_per_s`` a durable pull consumer (``run_consumer``) with explicit
  acks over the stored events;
* ``per_task_us``: two events per task (``started`` and ``completed``, built and published), for
  ``--tasks`` tasks, per backend, in microseconds per task, and with events off (``NullBus``).
  For NATS, ``per_task_us`` includes the final ``flush()`` (every ack received), and
  ``per_task_sync_us`` is the same with ``acks="wait"``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plan2flow.events import EventBus, InProcessBus, NullBus, RunContext, decode_event


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds) if seconds > 0 else float("inf")


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def build(n: int) -> tuple[list[Any], float]:
    run = RunContext("acme", "bench", "sha256:00", uuid.uuid4().hex)
    events: list[Any] = []
    seconds = _timed(lambda: events.extend(run.task("started", f"t{i}") for i in range(n)))
    return events, seconds


def per_task(bus: EventBus, tasks: int) -> float:
    """Microseconds per task of publishing two events per task, then ``flush()`` (for NATS:
    until every ack is in)."""
    run = RunContext("acme", "bench", "sha256:00", uuid.uuid4().hex)

    def work() -> None:
        for index in range(tasks):
            bus.publish(run.task("started", f"t{index}"))
            bus.publish(run.task("completed", f"t{index}"))
        bus.flush(30)

    return round(_timed(work) / tasks * 1e6, 1)


def measure_memory(events: Sequence[Any], tasks: int) -> dict[str, Any]:
    bus = InProcessBus()
    subscription = bus.subscribe("plan2flow.>", max_pending=len(events) + 1)
    publish = _timed(lambda: [bus.publish(e) for e in events])
    drain = _timed(lambda: [subscription.get(0) for _ in events])
    round_trip = _timed(lambda: [decode_event(e.to_json()) for e in events])
    subscription.close()
    return {
        "publish_per_s": _rate(len(events), publish),
        "consume_per_s": _rate(len(events), drain),
        "json_round_trip_per_s": _rate(len(events), round_trip),
        "per_task_us": per_task(InProcessBus(), tasks),
    }


def measure_nats(url: str, events: Sequence[Any], tasks: int) -> dict[str, Any]:
    import asyncio

    from plan2flow.events.acks import AckInbox
    from plan2flow.events.consume import run_consumer
    from plan2flow.events.jetstream import JetStreamBus, NatsSettings, connect, publish_batch

    tag = uuid.uuid4().hex[:8]
    spool = Path(tempfile.mkdtemp(prefix="p2f-bench-events-"))
    settings = NatsSettings(
        servers=(url,),
        root=f"bench{tag}",
        stream=f"BENCH_{tag}",
        dlq_stream=f"BENCH_DLQ_{tag}",
        advisory_stream=f"BENCH_ADV_{tag}",
        spool_dir=spool,
    )
    bus = JetStreamBus(settings.with_(acks="background"))
    waiting = JetStreamBus(settings.with_(acks="wait"))
    try:
        if not bus.wait_connected(10) or not waiting.wait_connected(10):
            raise SystemExit(f"no NATS server with JetStream at {url}: {bus.problem}")

        def background() -> None:
            for event in events:
                bus.publish(event)
            bus.flush(30)

        published = _timed(background)
        task_cost = per_task(bus, tasks)
        again = [e.model_copy(update={"id": e.id + "-s"}) for e in events]
        sync = _timed(lambda: [waiting.publish(e) for e in again])
        sync_task_cost = per_task(waiting, tasks)
        again = [e.model_copy(update={"id": e.id + "-a"}) for e in events]

        async def publish_async() -> float:
            nc = await connect(settings)
            inbox = await AckInbox.open(nc)
            started = time.perf_counter()
            for start in range(0, len(again), 500):
                await publish_batch(inbox, settings, again[start : start + 500])
            seconds = time.perf_counter() - started
            await nc.close()
            return seconds

        async_seconds = asyncio.run(publish_async())
        total = len(events) * 3 + tasks * 4
        consume = _timed(
            lambda: run_consumer(
                settings, "bench", ">", lambda e, d: None, batch=500, idle_exit=0.3
            )
        )
        return {
            "publish_per_s": _rate(len(events), published),
            "publish_sync_per_s": _rate(len(events), sync),
            "publish_async_per_s": _rate(len(again), async_seconds),
            "consume_per_s": _rate(total, max(consume - 0.3, 1e-9)),
            "per_task_us": task_cost,
            "per_task_sync_us": sync_task_cost,
            "spooled": bus.spooled + waiting.spooled,
        }
    finally:
        bus.close()
        waiting.close()
        shutil.rmtree(spool, ignore_errors=True)

        async def cleanup() -> None:
            nc = await connect(settings)
            js = nc.jetstream()
            for name in (settings.stream, settings.dlq_stream, settings.advisory_stream):
                await js.delete_stream(name)
            await nc.close()

        asyncio.run(cleanup())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="events per rate measurement")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks for the per-task cost")
    parser.add_argument("--url", default=None, help="a NATS server with JetStream")
    args = parser.parse_args(argv)
    if args.n < 1 or args.tasks < 1:
        parser.error("--n and --tasks must be at least 1")
    events, build_seconds = build(args.n)
    report: dict[str, Any] = {
        "n": args.n,
        "tasks": args.tasks,
        "event_bytes": len(events[0].to_json()),
        "build_per_s": _rate(args.n, build_seconds),
        "off_per_task_us": per_task(NullBus(), args.tasks),
        "memory": measure_memory(events, args.tasks),
    }
    if args.url:
        report["nats"] = measure_nats(args.url, events, args.tasks)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
