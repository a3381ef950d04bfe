"""Durable consumers of the events stream, and the dead-letter queue.

:func:`consume` runs a handler over a durable pull consumer with explicit acks: an event is
acked after its handler returns. Delivery is at least once (a consumer that dies before its ack
gets the message again after ``ack_wait``, and the server may redeliver an acked message after a
crash of its own), so handlers are idempotent by event id; :class:`SeenIds` makes that easy by
recording handled ids and skipping them.

A message lands in ``PLAN2FLOW_DLQ`` (subject ``dlq.<original subject>``, headers with the
reason, the error and where it came from) when:

* it is not an event (not JSON, or an envelope or ``data`` that does not validate): at once,
  since no redelivery can change that (reason ``unparseable``);
* its handler raised on its last allowed delivery (``max_deliver``) (reason ``handler``);
* its deliveries ran out without any ack, e.g. every consumer that took it died (reason
  ``max_deliver``): the server's advisory is kept in ``PLAN2FLOW_ADVISORIES`` and
  :func:`move_exhausted` moves the message (every consumer runs it now and then, and so does
  ``dlq_list``).

Each dead letter carries ``Nats-Msg-Id: dlq-<stream>-<seq>-<consumer>``, so the two paths can
never file the same message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from plan2flow.events.envelope import Event, decode_event
from plan2flow.events.errors import InvalidEvent
from plan2flow.events.jetstream import NatsSettings, connect, ensure_streams, require

LOGGER = logging.getLogger("plan2flow.events")

MOVER = "plan2flow-dlq-mover"
HEADER = "P2F-"


@dataclass(frozen=True)
class Delivery:
    """Where a handled event came from."""

    stream_seq: int
    num_delivered: int
    subject: str


@dataclass
class ConsumeReport:
    handled: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0


ConsumeHandler = Callable[[Event, Delivery], None]


class SeenIds:
    """Event ids already handled, in a SQLite file: how a handler stays idempotent."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL)")
        self._lock = threading.Lock()

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM seen WHERE id = ?", (event_id,)).fetchone()
        return row is not None

    def add(self, event_id: str) -> bool:
        """Record ``event_id``; False when it was already there."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (event_id, time.time())
            )
        return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()


def _header(value: object) -> str:
    return " ".join(str(value).split())[:2000]


async def dead_letter(
    js: JetStreamContext,
    settings: NatsSettings,
    *,
    subject: str,
    data: bytes,
    stream_seq: int,
    consumer: str,
    reason: str,
    error: str,
    deliveries: int,
    event_id: str | None = None,
) -> None:
    """File one message in the DLQ with its error and provenance (idempotent)."""
    headers = {
        "Nats-Msg-Id": f"dlq-{settings.stream}-{stream_seq}-{consumer}",
        f"{HEADER}Reason": reason,
        f"{HEADER}Error": _header(error) or "-",
        f"{HEADER}Stream": settings.stream,
        f"{HEADER}Seq": str(stream_seq),
        f"{HEADER}Subject": subject,
        f"{HEADER}Consumer": consumer,
        f"{HEADER}Deliveries": str(deliveries),
        f"{HEADER}Time": dt.datetime.now(dt.UTC).isoformat(),
    }
    if event_id:
        headers[f"{HEADER}Event-Id"] = event_id
    await js.publish(f"{settings.dlq_prefix}.{subject}", data, headers=headers)


async def move_exhausted(js: JetStreamContext, settings: NatsSettings) -> int:
    """Move every message whose deliveries ran out (per the stored advisories) to the DLQ."""
    sub = await js.pull_subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{settings.stream}.>",
        durable=MOVER,
        stream=settings.advisory_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30),
    )
    moved = 0
    try:
        while True:
            try:
                advisories = await sub.fetch(100, timeout=0.2)
            except TimeoutError:
                return moved
            for advisory in advisories:
                body = json.loads(advisory.data)
                seq = int(body["stream_seq"])
                try:
                    original = await js.get_msg(settings.stream, seq)
                except NotFoundError:
                    LOGGER.error("exhausted message %s:%d is gone", settings.stream, seq)
                    await advisory.ack()
                    continue
                data = original.data or b""
                event_id = None
                with contextlib.suppress(InvalidEvent):
                    event_id = decode_event(data).id
                await dead_letter(
                    js,
                    settings,
                    subject=str(original.subject),
                    data=data,
                    stream_seq=seq,
                    consumer=str(body.get("consumer", "?")),
                    reason="max_deliver",
                    error=f"no ack after {body.get('deliveries', '?')} deliveries",
                    deliveries=int(body.get("deliveries", 0)),
                    event_id=event_id,
                )
                await advisory.ack()
                moved += 1
    finally:
        await sub.unsubscribe()


async def consume(
    settings: NatsSettings,
    durable: str,
    patterns: str | Sequence[str],
    handler: ConsumeHandler,
    *,
    ack_wait: float = 30.0,
    max_deliver: int = 5,
    strict_order: bool = False,
    batch: int = 100,
    seen: SeenIds | None = None,
    stop: threading.Event | None = None,
    idle_exit: float | None = None,
    deliver_from_seq: int | None = None,
) -> ConsumeReport:
    """Handle events matching ``patterns`` with the durable consumer ``durable`` until ``stop``
    is set or, with ``idle_exit``, until nothing came for that many seconds.

    ``strict_order`` allows one message in flight (``max_ack_pending=1``), so a redelivery is
    handled before anything after it. Several patterns need ``filter_subjects`` (server 2.10+):
    an older server is refused with :class:`~plan2flow.events.errors.UnsupportedServer`. The
    handler runs in a thread; while it runs, the message's ack deadline is extended.
    """
    wanted = [patterns] if isinstance(patterns, str) else list(patterns)
    nc = await connect(settings)
    report = ConsumeReport()
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            max_ack_pending=1 if strict_order else max(batch * 2, 1000),
        )
        if deliver_from_seq is not None:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = deliver_from_seq
        if len(wanted) > 1:
            require(nc, "filter_subjects")
            config.filter_subjects = [settings.wire(p) for p in wanted]
        sub = await js.pull_subscribe(
            settings.wire(wanted[0]), durable=durable, stream=settings.stream, config=config
        )
        size = 1 if strict_order else batch
        last_seen = time.monotonic()
        last_move = 0.0
        while not (stop is not None and stop.is_set()):
            if time.monotonic() - last_move > 5:
                report.dead_lettered += await move_exhausted(js, settings)
                last_move = time.monotonic()
            try:
                messages = await sub.fetch(size, timeout=0.5)
            except TimeoutError:
                if idle_exit is not None and time.monotonic() - last_seen > idle_exit:
                    break
                continue
            last_seen = time.monotonic()
            for msg in messages:
                await _handle(
                    js, settings, durable, msg, handler, max_deliver, seen, report, ack_wait
                )
        report.dead_lettered += await move_exhausted(js, settings)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return report


async def _handle(
    js: JetStreamContext,
    settings: NatsSettings,
    durable: str,
    msg: Msg,
    handler: ConsumeHandler,
    max_deliver: int,
    seen: SeenIds | None,
    report: ConsumeReport,
    ack_wait: float,
) -> None:
    meta = msg.metadata
    delivery = Delivery(meta.sequence.stream, meta.num_delivered, msg.subject)
    try:
        event = decode_event(msg.data)
    except InvalidEvent as error:
        await dead_letter(
            js,
            settings,
            subject=msg.subject,
            data=msg.data,
            stream_seq=delivery.stream_seq,
            consumer=durable,
            reason="unparseable",
            error=str(error),
            deliveries=delivery.num_delivered,
        )
        await msg.term()
        report.dead_lettered += 1
        return
    if seen is not None and event.id in seen:
        await msg.ack()
        report.skipped += 1
        return
    work = asyncio.ensure_future(asyncio.to_thread(handler, event, delivery))
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=max(ack_wait / 2, 0.1))
            if done:
                break
            await msg.in_progress()
        work.result()
    except Exception as error:
        report.failed += 1
        if delivery.num_delivered >= max_deliver:
            await dead_letter(
                js,
                settings,
                subject=msg.subject,
                data=msg.data,
                stream_seq=delivery.stream_seq,
                consumer=durable,
                reason="handler",
                error=f"{type(error).__name__}: {error}",
                deliveries=delivery.num_delivered,
                event_id=event.id,
            )
            await msg.term()
            report.dead_lettered += 1
        else:
            await msg.nak()
        return
    if seen is not None:
        seen.add(event.id)
    await msg.ack()
    report.handled += 1


def run_consumer(
    settings: NatsSettings,
    durable: str,
    patterns: str | Sequence[str],
    handler: ConsumeHandler,
    **options: Any,
) -> ConsumeReport:
    """:func:`consume` from synchronous code (its own event loop, in this thread)."""
    return asyncio.run(consume(settings, durable, patterns, handler, **options))
