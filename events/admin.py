"""What the ``plan2flow events`` commands do, as functions that return data (they print
nothing): ``tail``, ``replay``, ``dlq list|show|retry|purge``, ``flush`` and ``stats``.

Every function takes the :class:`~plan2flow.events.jetstream.NatsSettings` of the bus, or None
for the environment's (:func:`settings_from_env`); without a NATS URL, :func:`tail` follows the
in-process bus of this process and the others raise
:class:`~plan2flow.events.errors.NatsRequired`. Connection problems raise
:class:`~plan2flow.events.errors.BusUnavailable`, old servers
:class:`~plan2flow.events.errors.UnsupportedServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from plan2flow.events.acks import AckInbox
from plan2flow.events.bus import URL_ENV, EventBus, process_bus
from plan2flow.events.consume import HEADER, move_exhausted
from plan2flow.events.envelope import Event, decode_event
from plan2flow.events.errors import InvalidEvent, NatsRequired
from plan2flow.events.jetstream import (
    NatsSettings,
    connect,
    ensure_streams,
    publish_batch,
    server_version,
)
from plan2flow.events.spool import FlushReport, Spool

T = TypeVar("T")


def settings_from_env(environ: Mapping[str, str] | None = None) -> NatsSettings | None:
    """The bus's settings from ``PLAN2FLOW_EVENTS_URL``, or None when it is not set."""
    import os

    env = os.environ if environ is None else environ
    return NatsSettings.from_env(env) if env.get(URL_ENV, "").strip() else None


def _need(settings: NatsSettings | None, what: str) -> NatsSettings:
    resolved = settings if settings is not None else settings_from_env()
    if resolved is None:
        raise NatsRequired(
            f"{what} needs the NATS bus: set {URL_ENV} (nats://host:4222); the in-process bus "
            "keeps no history"
        )
    return resolved


async def _session(settings: NatsSettings) -> tuple[Client, JetStreamContext]:
    nc = await connect(settings, reconnect=False)
    js = nc.jetstream()
    try:
        await ensure_streams(js, settings)
    except BaseException:
        await nc.close()
        raise
    return nc, js


def _run(settings: NatsSettings, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    async def main() -> T:
        nc, js = await _session(settings)
        try:
            return await work(js)
        finally:
            await nc.close()

    return asyncio.run(main())


def _iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """An async iterator as a plain one, on an event loop of its own in this thread."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(agen.aclose())  # type: ignore[attr-defined]
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(_drain(leftover))
        loop.close()


async def _drain(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


# --- tail and replay -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """A message of the events stream: its sequence, when it was stored, and the event (or,
    for a message that is not one, why)."""

    seq: int
    stored: dt.datetime | None
    subject: str
    event: Event | None
    raw: bytes
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "stored": self.stored.isoformat() if self.stored else None,
            "subject": self.subject,
            "event": self.event.to_dict() if self.event else None,
            "error": self.error,
        }


def tail(
    pattern: str = ">",
    *,
    settings: NatsSettings | None = None,
    bus: EventBus | None = None,
    timeout: float | None = None,
    limit: int | None = None,
) -> Generator[Event, None, None]:
    """Live events matching ``pattern``, as they are published, until ``limit`` events or
    ``timeout`` seconds without one (both unbounded by default).

    With NATS (``settings`` or the environment) it follows the stream; otherwise ``bus`` or
    the in-process bus of this process (runs started by this process).
    """
    resolved = settings if settings is not None else settings_from_env()
    if bus is None and resolved is not None:
        yield from _iterate(_tail_nats(resolved, pattern, timeout, limit))
        return
    subscription = (bus or process_bus()).subscribe(pattern)
    try:
        count = 0
        while limit is None or count < limit:
            event = subscription.get(timeout)
            if event is None:
                return
            count += 1
            yield event
    finally:
        subscription.close()


async def _tail_nats(
    settings: NatsSettings, pattern: str, timeout: float | None, limit: int | None
) -> AsyncIterator[Event]:
    nc, js = await _session(settings)
    try:
        sub = await js.subscribe(
            settings.wire(pattern),
            stream=settings.stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )
        count = 0
        try:
            while limit is None or count < limit:
                try:
                    msg = await sub.next_msg(timeout=timeout)
                except TimeoutError:
                    return
                try:
                    event = decode_event(msg.data)
                except InvalidEvent:
                    continue
                count += 1
                yield event
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        await nc.close()


def replay(
    pattern: str = ">",
    *,
    from_seq: int | None = None,
    since: dt.datetime | None = None,
    settings: NatsSettings | None = None,
    batch: int = 500,
) -> Generator[StoredEvent, None, None]:
    """The stored events matching ``pattern`` from stream sequence ``from_seq`` or from time
    ``since`` (a datetime with a UTC offset), up to the last one stored when it began, in
    stream order. Messages that are not events come with ``event=None`` and their error."""
    resolved = _need(settings, "replay")
    if (from_seq is None) == (since is None):
        raise ValueError("replay needs exactly one of from_seq and since")
    if since is not None and since.tzinfo is None:
        raise ValueError("since must carry a UTC offset")
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, inactive_threshold=60.0, mem_storage=True, max_waiting=1
    )
    if from_seq is not None:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = max(1, from_seq)
    else:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = since.astimezone(dt.UTC)  # type: ignore[union-attr]
    yield from _iterate(_replay(resolved, pattern, config, batch))


async def _replay(
    settings: NatsSettings, pattern: str, config: ConsumerConfig, batch: int
) -> AsyncIterator[StoredEvent]:
    nc, js = await _session(settings)
    try:
        info = await js.stream_info(settings.stream)
        last = info.state.last_seq
        sub = await js.pull_subscribe(settings.wire(pattern), stream=settings.stream, config=config)
        try:
            while True:
                try:
                    messages = await sub.fetch(batch, timeout=1.0)
                except TimeoutError:
                    return
                for msg in messages:
                    meta = msg.metadata
                    if meta.sequence.stream > last:
                        return
                    yield _stored(
                        settings, meta.sequence.stream, meta.timestamp, msg.subject, msg.data
                    )
                    if meta.num_pending == 0:
                        return
        finally:
            with contextlib.suppress(Exception):
                await js.delete_consumer(settings.stream, (await sub.consumer_info()).name)
    finally:
        await nc.close()


def _stored(
    settings: NatsSettings, seq: int, stored: dt.datetime | None, subject: str, data: bytes
) -> StoredEvent:
    try:
        return StoredEvent(seq, stored, settings.canonical(subject), decode_event(data), data)
    except (InvalidEvent, ValueError) as error:
        return StoredEvent(seq, stored, subject, None, data, str(error))


# --- the dead-letter queue -------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One message of ``PLAN2FLOW_DLQ``: why it is there, where it came from, its bytes."""

    seq: int
    subject: str
    reason: str
    error: str
    consumer: str
    deliveries: int
    original_seq: int
    event_id: str | None
    filed: str
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "subject": self.subject,
            "reason": self.reason,
            "error": self.error,
            "consumer": self.consumer,
            "deliveries": self.deliveries,
            "original_seq": self.original_seq,
            "event_id": self.event_id,
            "filed": self.filed,
            "data": self.data.decode("utf-8", "replace"),
        }


def _dead_letter(
    seq: int, subject: str, headers: Mapping[str, str] | None, data: bytes
) -> DeadLetter:
    h = dict(headers or {})
    return DeadLetter(
        seq=seq,
        subject=h.get(f"{HEADER}Subject", subject.partition(".")[2]),
        reason=h.get(f"{HEADER}Reason", "?"),
        error=h.get(f"{HEADER}Error", ""),
        consumer=h.get(f"{HEADER}Consumer", "?"),
        deliveries=int(h.get(f"{HEADER}Deliveries", "0") or 0),
        original_seq=int(h.get(f"{HEADER}Seq", "0") or 0),
        event_id=h.get(f"{HEADER}Event-Id"),
        filed=h.get(f"{HEADER}Time", ""),
        data=data,
    )


async def _dlq_messages(js: JetStreamContext, settings: NatsSettings) -> list[DeadLetter]:
    await move_exhausted(js, settings)
    info = await js.stream_info(settings.dlq_stream)
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe(
        f"{settings.dlq_prefix}.{settings.root}.>",
        stream=settings.dlq_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=60.0, mem_storage=True),
    )
    letters: list[DeadLetter] = []
    try:
        while True:
            try:
                messages = await sub.fetch(500, timeout=1.0)
            except TimeoutError:
                break
            for msg in messages:
                meta = msg.metadata
                letters.append(
                    _dead_letter(meta.sequence.stream, msg.subject, msg.headers, msg.data)
                )
            if messages[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(settings.dlq_stream, (await sub.consumer_info()).name)
    return letters


def dlq_list(settings: NatsSettings | None = None) -> list[DeadLetter]:
    """Every dead letter, oldest first (moving exhausted messages in first)."""
    resolved = _need(settings, "dlq list")
    return _run(resolved, lambda js: _dlq_messages(js, resolved))


def dlq_show(seq: int, settings: NatsSettings | None = None) -> DeadLetter:
    """One dead letter by its DLQ sequence; ``KeyError`` when there is none."""
    resolved = _need(settings, "dlq show")

    async def work(js: JetStreamContext) -> DeadLetter:
        try:
            msg = await js.get_msg(resolved.dlq_stream, seq)
        except NotFoundError:
            raise KeyError(f"no dead letter {seq} in {resolved.dlq_stream}") from None
        return _dead_letter(seq, str(msg.subject), msg.headers, msg.data or b"")

    return _run(resolved, work)


def dlq_retry(
    seqs: Sequence[int] | None = None, settings: NatsSettings | None = None
) -> list[tuple[int, int]]:
    """Publish dead letters (all, or those of ``seqs``) again to their original subjects and
    remove them from the DLQ; ``(dlq seq, new stream seq)`` for each.

    The copy is a new message (its ``Nats-Msg-Id`` is ``<event id>-retry-<dlq seq>``, so the
    duplicate window does not swallow it): every consumer whose filter matches receives it,
    and consumers that had handled the event skip it by its id.
    """
    resolved = _need(settings, "dlq retry")

    async def work(js: JetStreamContext) -> list[tuple[int, int]]:
        letters = await _dlq_messages(js, resolved)
        chosen = [letter for letter in letters if seqs is None or letter.seq in set(seqs)]
        done = []
        for letter in chosen:
            ack = await js.publish(
                letter.subject,
                letter.data,
                headers={
                    "Nats-Msg-Id": f"{letter.event_id or 'raw'}-retry-{letter.seq}",
                    f"{HEADER}Retry-Of": str(letter.seq),
                },
            )
            await js.delete_msg(resolved.dlq_stream, letter.seq)
            done.append((letter.seq, ack.seq))
        return done

    return _run(resolved, work)


def dlq_purge(seqs: Sequence[int] | None = None, settings: NatsSettings | None = None) -> int:
    """Remove dead letters (all, or those of ``seqs``); how many were removed."""
    resolved = _need(settings, "dlq purge")

    async def work(js: JetStreamContext) -> int:
        if seqs is None:
            info = await js.stream_info(resolved.dlq_stream)
            await js.purge_stream(resolved.dlq_stream)
            return info.state.messages
        removed = 0
        for seq in seqs:
            with contextlib.suppress(APIError):  # not there: 404, or 500 "stream store EOF"
                removed += bool(await js.delete_msg(resolved.dlq_stream, seq))
        return removed

    return _run(resolved, work)


# --- the spool and the numbers ----------------------------------------------------------------


def flush(settings: NatsSettings | None = None) -> FlushReport:
    """Publish the local spool's events in order (each once: the stream drops the ids it has)."""
    resolved = _need(settings, "flush")
    spool = Spool(resolved.spool_dir, max_bytes=resolved.spool_max_bytes)
    if spool.is_empty():
        return FlushReport()

    async def main() -> FlushReport:
        nc, _ = await _session(resolved)
        loop = asyncio.get_running_loop()
        try:
            inbox = await AckInbox.open(nc)

            def send(events: Sequence[Event]) -> Sequence[bool]:
                return asyncio.run_coroutine_threadsafe(
                    publish_batch(inbox, resolved, events), loop
                ).result(resolved.publish_timeout + 0.01 * len(events) + 1)

            return await asyncio.to_thread(spool.flush, send)
        finally:
            await nc.close()

    return asyncio.run(main())


def stats(settings: NatsSettings | None = None) -> dict[str, Any]:
    """The events stream (messages, bytes, first and last sequence and time), every consumer
    (pending, waiting for ack, redelivered), the DLQ's size and the local spool."""
    resolved = _need(settings, "stats")
    spool = Spool(resolved.spool_dir, max_bytes=resolved.spool_max_bytes)

    async def main() -> dict[str, Any]:
        nc, js = await _session(resolved)
        try:
            info = await js.stream_info(resolved.stream)
            dlq = await js.stream_info(resolved.dlq_stream)
            consumers = await js.consumers_info(resolved.stream)
            state = info.state
            return {
                "server_version": ".".join(map(str, server_version(nc))),
                "stream": {
                    "name": resolved.stream,
                    "messages": state.messages,
                    "bytes": state.bytes,
                    "first_seq": state.first_seq,
                    "last_seq": state.last_seq,
                    "replicas": info.config.num_replicas,
                },
                "consumers": sorted(
                    (
                        {
                            "name": c.name,
                            "pending": c.num_pending or 0,
                            "ack_pending": c.num_ack_pending or 0,
                            "redelivered": c.num_redelivered or 0,
                            "filter": c.config.filter_subject,
                        }
                        for c in consumers
                    ),
                    key=lambda c: str(c["name"]),
                ),
                "dlq": {"name": resolved.dlq_stream, "messages": dlq.state.messages},
                "spool": {"path": str(spool.path), "pending": spool.pending()},
            }
        finally:
            await nc.close()

    return asyncio.run(main())
