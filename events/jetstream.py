"""The NATS JetStream backend: settings, connecting (with the server version check), the
streams, batch publishing, and :class:`JetStreamBus`, the runtime's publisher.

* ``PLAN2FLOW_EVENTS`` (file storage, limits retention) is the write-ahead log of every event,
  under ``plan2flow.>``. Every publish carries ``Nats-Msg-Id`` = the event id, so a re-publish
  inside the stream's duplicate window (1 hour by default) is stored once.
* ``PLAN2FLOW_DLQ`` keeps dead letters under ``dlq.plan2flow.>`` (see
  :mod:`plan2flow.events.consume`), ``PLAN2FLOW_ADVISORIES`` the server's max-deliveries
  advisories for the events stream, so that none is lost while no consumer listens.

:class:`JetStreamBus` owns one connection on an event loop in a thread of its own. ``publish``
hands the event to the connection and returns (``acks="background"``, the default), and the loop
checks the acks in the background, with at most ``max_in_flight`` events unacknowledged; with
``acks="wait"`` each publish waits for its ack. When the bus is down, unreachable or slow, or an
ack fails or does not come within ``publish_timeout``, every event still in flight and every
later one goes to the local :class:`~plan2flow.events.spool.Spool`, in order, until a background
flush has published the spool. An unacknowledged event reaches the stream only that way: the
connection re-sends nothing after a reconnect (:mod:`plan2flow.events.acks`), so the stream keeps
the publish order through failures. :meth:`JetStreamBus.flush` (and ``close``, and the end of
the process) waits, bounded, for the outstanding acks and spools the rest. A publish never
raises and never waits longer than ``publish_timeout``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from plan2flow.events.acks import NO_RECONNECT_BUFFER, AckInbox, forget_unsent
from plan2flow.events.bus import (
    DEFAULT_BLOCK_SECONDS,
    DEFAULT_MAX_PENDING,
    Handler,
    Outcome,
    Overflow,
    Subscription,
)
from plan2flow.events.envelope import Event, decode_event
from plan2flow.events.errors import BusUnavailable, InvalidEvent, UnsupportedServer
from plan2flow.events.spool import DEFAULT_MAX_BYTES, FlushReport, Spool
from plan2flow.events.subjects import ROOT, from_wire, to_wire
from plan2flow.home import HOME_ENV, plan2flow_home

LOGGER = logging.getLogger("plan2flow.events")

MIN_VERSION = (2, 9, 0)
FEATURES = {
    "filter_subjects": (2, 10, 0),
    "msg_ttl": (2, 11, 0),
}
"""What plan2flow may ask of a server, and the first server version that does it. Older servers
ignore some of these silently (2.9 ignores ``filter_subjects``), so each is checked first."""

DAY = 24 * 3600.0
ACKS = ("background", "wait")
"""How ``JetStreamBus.publish`` treats the stream's ack: check it in the background (the
default), or wait for it before returning."""
RETRY_SECONDS = 0.25
"""How long the bus waits before it tries again to publish its spool, when the last try failed."""
RECENT_IDS = 65_536
"""How many event ids a bus remembers, to answer a re-publish with ``duplicate`` at once."""


@dataclass(frozen=True)
class NatsSettings:
    """Where the bus is and what its streams are called.

    Tests and separate installations sharing one server use their own ``root`` (the first token
    of every stored subject) and stream names.
    """

    servers: tuple[str, ...]
    root: str = ROOT
    stream: str = "PLAN2FLOW_EVENTS"
    dlq_stream: str = "PLAN2FLOW_DLQ"
    advisory_stream: str = "PLAN2FLOW_ADVISORIES"
    replicas: int = 1
    max_age_seconds: float = 7 * DAY
    dlq_max_age_seconds: float = 30 * DAY
    duplicate_window_seconds: float = 3600.0
    publish_timeout: float = 2.0
    connect_timeout: float = 2.0
    spool_dir: Path = field(default_factory=lambda: plan2flow_home(create=False) / "events")
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    acks: str = "background"
    """``background`` (the default): a publish hands the event to the connection and its ack is
    checked in the background, with at most ``max_in_flight`` unacknowledged; ``wait``: each
    publish waits for its ack, about four times dearer. Both keep the publisher's order through a
    reconnect; ``background`` loses the events in flight if the process is killed."""
    max_in_flight: int = 1000

    def __post_init__(self) -> None:
        if self.acks not in ACKS:
            raise ValueError(f"acks must be one of {', '.join(ACKS)}, not {self.acks!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NatsSettings:
        """From ``PLAN2FLOW_EVENTS_URL`` (``nats://a:4222,nats://b:4222``),
        ``PLAN2FLOW_EVENTS_REPLICAS``, ``PLAN2FLOW_EVENTS_SPOOL_MAX_BYTES``,
        ``PLAN2FLOW_EVENTS_ACKS`` (``background`` or ``wait``), ``PLAN2FLOW_HOME`` (the spool is
        ``$PLAN2FLOW_HOME/events``) and, for installations sharing one server,
        ``PLAN2FLOW_EVENTS_ROOT``, ``PLAN2FLOW_EVENTS_STREAM``, ``PLAN2FLOW_EVENTS_DLQ_STREAM``
        and ``PLAN2FLOW_EVENTS_ADVISORY_STREAM``."""
        env = os.environ if environ is None else environ
        servers = tuple(s.strip() for s in env.get("PLAN2FLOW_EVENTS_URL", "").split(",") if s)
        if not servers:
            raise BusUnavailable("PLAN2FLOW_EVENTS_URL is not set: there is no NATS bus")
        names = {
            field_name: value
            for field_name, variable in (
                ("root", "PLAN2FLOW_EVENTS_ROOT"),
                ("stream", "PLAN2FLOW_EVENTS_STREAM"),
                ("dlq_stream", "PLAN2FLOW_EVENTS_DLQ_STREAM"),
                ("advisory_stream", "PLAN2FLOW_EVENTS_ADVISORY_STREAM"),
            )
            if (value := env.get(variable, "").strip())
        }
        return cls(
            servers=servers,
            replicas=int(env.get("PLAN2FLOW_EVENTS_REPLICAS", "1")),
            spool_dir=plan2flow_home(env if HOME_ENV in env else None, create=False) / "events",
            spool_max_bytes=int(env.get("PLAN2FLOW_EVENTS_SPOOL_MAX_BYTES", DEFAULT_MAX_BYTES)),
            acks=env.get("PLAN2FLOW_EVENTS_ACKS", "").strip() or "background",
        ).with_(**names)

    def with_(self, **changes: Any) -> NatsSettings:
        return replace(self, **changes)

    def wire(self, subject_or_pattern: str) -> str:
        """A ``plan2flow.…`` subject or pattern as stored in the stream (under ``root``)."""
        return to_wire(subject_or_pattern, self.root)

    def canonical(self, wire_subject: str) -> str:
        return from_wire(wire_subject, self.root)

    @property
    def dlq_prefix(self) -> str:
        return "dlq"


def server_version(nc: Client) -> tuple[int, int, int]:
    version = nc.connected_server_version
    return (version.major, version.minor, version.patch)


def require(nc: Client, feature: str) -> None:
    """:class:`UnsupportedServer` unless the connected server does ``feature``."""
    needed = FEATURES[feature]
    have = server_version(nc)
    if have < needed:
        raise UnsupportedServer(
            f"nats-server {'.'.join(map(str, have))} does not support {feature} (it needs "
            f"{'.'.join(map(str, needed))} or later, and older servers ignore it silently)"
        )


async def _quiet(error: Exception) -> None:
    LOGGER.debug("nats: %s", error)


async def connect(
    settings: NatsSettings, *, timeout: float | None = None, reconnect: bool = True
) -> Client:
    """A checked connection: :class:`BusUnavailable` when no server answers within ``timeout``
    (``connect_timeout`` by default) or its JetStream does not answer yet,
    :class:`UnsupportedServer` when the server is older than 2.9 or has no JetStream."""
    wait = settings.connect_timeout if timeout is None else timeout
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                list(settings.servers),
                connect_timeout=max(1, int(wait)),
                max_reconnect_attempts=-1 if reconnect else 0,
                reconnect_time_wait=0.5,
                error_cb=_quiet,
            ),
            wait,
        )
    except (TimeoutError, OSError, nats.errors.Error) as error:
        raise BusUnavailable(
            f"no NATS server answers at {','.join(settings.servers)} within {wait:g}s"
        ) from error
    try:
        await check_server(nc)
    except BaseException:
        await nc.close()
        raise
    return nc


async def check_server(nc: Client) -> None:
    have = server_version(nc)
    if have < MIN_VERSION:
        raise UnsupportedServer(
            f"nats-server {'.'.join(map(str, have))} is too old: the event bus needs "
            f"{'.'.join(map(str, MIN_VERSION))} or later"
        )
    where = nc.connected_url.netloc if nc.connected_url else "?"
    try:
        await nc.jetstream().account_info()
    except nats.errors.TimeoutError as error:
        # JetStream is there but says nothing yet: a cluster electing its meta leader (after a
        # start, or after the node that led it died) answers once it has one.
        raise BusUnavailable(
            f"JetStream on the NATS server at {where} did not answer in time (a cluster "
            "answers once it has elected its leader)"
        ) from error
    except Exception as error:
        raise UnsupportedServer(
            f"JetStream is not enabled on the NATS server at {where} (start nats-server with -js)"
        ) from error


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create the three streams when they do not exist (existing ones are left as they are)."""
    wanted = [
        StreamConfig(
            name=settings.stream,
            description="plan2flow events: the write-ahead log",
            subjects=[f"{settings.root}.>"],
            max_age=settings.max_age_seconds,
        ),
        StreamConfig(
            name=settings.dlq_stream,
            description="plan2flow events that no consumer could handle",
            subjects=[f"{settings.dlq_prefix}.{settings.root}.>"],
            max_age=settings.dlq_max_age_seconds,
        ),
        StreamConfig(
            name=settings.advisory_stream,
            description="max-deliveries advisories of the plan2flow events stream",
            subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{settings.stream}.>"],
            max_age=settings.dlq_max_age_seconds,
        ),
    ]
    for config in wanted:
        try:
            await js.stream_info(str(config.name))
            continue
        except NotFoundError:
            pass
        config.storage = StorageType.FILE
        config.retention = RetentionPolicy.LIMITS
        config.discard = DiscardPolicy.OLD
        config.num_replicas = settings.replicas
        config.duplicate_window = settings.duplicate_window_seconds
        await js.add_stream(config)


async def publish_batch(
    inbox: AckInbox, settings: NatsSettings, events: Sequence[Event]
) -> list[bool]:
    """Publish in order on one connection, each with ``Nats-Msg-Id``, and wait for every ack;
    for each event, whether the stream recognised it as a duplicate. Raises when any ack fails
    or does not come within ``publish_timeout`` (plus a little per event).

    The first event goes alone: while a stream is not there yet (a server restarting, a
    cluster electing the stream's leader) the server refuses publishes, and a pipeline that
    began then could see its first events refused and later ones stored, out of order. Once
    the first is stored the stream is there, and the rest are pipelined."""
    if not events:
        return []

    async def send(event: Event) -> asyncio.Future[PubAck]:
        return await inbox.publish(settings.wire(event.subject), event.to_json(), event.id)

    first = await asyncio.wait_for(await send(events[0]), settings.publish_timeout)
    futures = [await send(event) for event in events[1:]]
    acks = await asyncio.wait_for(
        asyncio.gather(*futures), settings.publish_timeout + 0.001 * len(futures)
    )
    return [bool(ack.duplicate) for ack in (first, *acks)]


@dataclass(eq=False)
class _InFlight:
    """An event handed to the connection whose ack has not been checked yet."""

    event: Event
    since: float
    future: asyncio.Future[Any] | None = None
    acked: bool = False
    gone: bool = False  # spooled (or dropped) after a failure: its ack no longer matters


def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for future in futures:
        if not future.done():
            future.cancel()


class JetStreamBus:
    """The NATS backend of :class:`~plan2flow.events.bus.EventBus` (see the module's text)."""

    def __init__(self, settings: NatsSettings, *, connect_wait: float | None = None) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes)
        self.published = 0
        self.acked = 0
        self.duplicates = 0
        self.spooled = 0
        self.dropped = 0
        self.flushed = 0
        self.problem: str | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._acks: AckInbox | None = None
        self._ready = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._spooling = not self.spool.is_empty()
        self._window: deque[_InFlight] = deque()  # in publish order; the front is the oldest
        self._outbox: deque[_InFlight] = deque()  # handed over, not yet given to the connection
        self._sending = False
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._subscriptions: list[tuple[Subscription, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._kick = asyncio.Event()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="plan2flow-events-nats", daemon=True
        )
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        atexit.register(self._at_exit)
        self._ready.wait(settings.connect_timeout if connect_wait is None else connect_wait)

    # --- the publisher's side (any thread) -------------------------------------------------

    def publish(self, event: Event) -> Outcome:
        if self.settings.acks == "wait":
            return self._publish_waiting(event)
        with self._lock:
            if self._spooling or self._closed or not self.connected:
                if not self._spooling:  # the events in flight go first
                    self._give_up("the bus is not connected")
                return self._to_spool(event)
            if event.id in self._recent:
                self.duplicates += 1
                return "duplicate"
            if len(self._window) >= self.settings.max_in_flight:
                room = self._room.wait_for(
                    lambda: self._spooling or len(self._window) < self.settings.max_in_flight,
                    self.settings.publish_timeout,
                )
                if not room:
                    self._give_up(
                        f"{len(self._window)} events in flight, none acknowledged within "
                        f"{self.settings.publish_timeout:g}s"
                    )
                if self._spooling:
                    return self._to_spool(event)
            entry = _InFlight(event, time.monotonic())
            self._window.append(entry)
            self._outbox.append(entry)
            self._remember(event.id)
            self.published += 1
            wake = not self._sending
            self._sending = True
        if wake:
            self._call_soon(self._start_sending)
        return "published"

    def _publish_waiting(self, event: Event) -> Outcome:
        with self._lock:
            if self._spooling or self._closed or not self.connected:
                self._spooling = True
                return self._to_spool(event)
        future = asyncio.run_coroutine_threadsafe(self._publish_one(event), self._loop)
        try:
            duplicate = future.result(self.settings.publish_timeout)
        except Exception as error:
            future.cancel()
            LOGGER.warning("event %s spooled: publish failed (%s)", event.id, error or "timeout")
            with self._lock:
                self._spooling = True
                return self._to_spool(event)
        if duplicate:
            self.duplicates += 1
            return "duplicate"
        self.published += 1
        self.acked += 1
        return "published"

    def _call_soon(self, callback: Any, *args: Any) -> None:
        """Hand work to the bus's loop; once the bus is closed there is none (an event
        published then stays in the spool, for the next bus or ``plan2flow events flush``)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(callback, *args)

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    def _to_spool(self, event: Event) -> Outcome:
        try:
            stored = self.spool.append(event)
        except OSError as error:
            stored = False
            LOGGER.error("event spool %s cannot be written: %s", self.spool.path, error)
        self._call_soon(self._kick.set)
        if stored:
            self.spooled += 1
            return "spooled"
        self._count_dropped(event)
        return "dropped"

    def _count_dropped(self, event: Event) -> None:
        self.dropped += 1
        self._recent.pop(event.id, None)
        LOGGER.error(
            "event %s (%s) dropped: the bus is down and the spool %s is full (%d bytes); "
            "%d dropped so far",
            event.id,
            event.type,
            self.spool.path,
            self.spool.max_bytes,
            self.dropped,
        )

    def _give_up(self, reason: str) -> None:
        """With the lock held: spool every event still in flight, in order (those acked behind
        an unacked one too: the stream recognises them when the spool is flushed), and spool
        every later event until the spool is flushed."""
        self._spooling = True
        entries = list(self._window)
        futures = []
        for entry in entries:
            entry.gone = True
            if entry.future is not None and not entry.future.done():
                futures.append(entry.future)
        if futures:
            self._call_soon(_cancel, futures)
        if entries:
            LOGGER.warning("%d event(s) in flight spooled: %s", len(entries), reason)
            events = [entry.event for entry in entries]
            try:
                stored = self.spool.append_many(events)
            except OSError as error:
                stored = 0
                LOGGER.error("event spool %s cannot be written: %s", self.spool.path, error)
            self.spooled += stored
            for event in events[stored:]:
                self._count_dropped(event)
        # Only now: `in_flight` (read without the lock) never shows 0 while the events that
        # were in flight are not in the spool yet.
        self._window.clear()
        self._outbox.clear()
        self._call_soon(self._kick.set)
        self._room.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds until every event handed to the connection is
        acknowledged; spool the ones that are not. True when none had to be spooled."""
        with self._lock:
            done = self._room.wait_for(lambda: not self._window, timeout)
            if not done:
                self._give_up(f"no ack within {timeout:g}s of the flush")
        return done

    @property
    def in_flight(self) -> int:
        return len(self._window)

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and self._nc is not None and self._nc.is_connected

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the bus is connected and its streams exist (tests, tools)."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_flushed(self, timeout: float) -> bool:
        """Wait until the spool is empty and publishes go straight to the stream again."""
        deadline = time.monotonic() + timeout
        while self._spooling or not self.spool.is_empty():
            if time.monotonic() >= deadline:
                return False
            self._call_soon(self._kick.set)
            time.sleep(0.02)
        return True

    # --- the loop's side ---------------------------------------------------------------------

    def _start_sending(self) -> None:
        task = self._loop.create_task(self._send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self) -> None:
        """Give the outbox's events to the connection, in order, and watch their acks. One
        sender at a time (``_sending``), so the connection gets them in publish order."""
        while True:
            with self._lock:
                if not self._outbox:
                    self._sending = False
                    return
                batch = list(self._outbox)
                self._outbox.clear()
            for entry in batch:
                if entry.gone:
                    continue
                try:
                    assert self._acks is not None
                    event = entry.event
                    future = await self._acks.publish(
                        self.settings.wire(event.subject), event.to_json(), event.id
                    )
                except Exception as error:
                    with self._lock:
                        if not entry.gone:
                            self._give_up(f"publish of {entry.event.id} failed: {error!r}")
                    break
                with self._lock:
                    entry.future = future
                    gone = entry.gone
                if gone:
                    future.cancel()
                else:
                    future.add_done_callback(functools.partial(self._acked, entry))

    def _acked(self, entry: _InFlight, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        with self._lock:
            if entry.gone:
                return
            if error is not None:
                self._give_up(f"publish of {entry.event.id} failed: {error!r}")
                return
            entry.acked = True
            self.acked += 1
            if future.result().duplicate:
                self.duplicates += 1
            while self._window and self._window[0].acked:
                self._window.popleft()
            self._room.notify_all()

    async def _watch_acks(self) -> None:
        """Spool what is in flight when the oldest event waited ``publish_timeout`` for its
        ack."""
        period = min(0.25, self.settings.publish_timeout / 4)
        while not self._closed:
            await asyncio.sleep(period)
            with self._lock:
                if (
                    self._window
                    and time.monotonic() - self._window[0].since > self.settings.publish_timeout
                ):
                    self._give_up(
                        f"no ack for {self._window[0].event.id} within "
                        f"{self.settings.publish_timeout:g}s"
                    )

    async def _publish_one(self, event: Event) -> bool:
        assert self._js is not None
        ack = await self._js.publish(
            self.settings.wire(event.subject),
            event.to_json(),
            timeout=self.settings.publish_timeout,
            headers={"Nats-Msg-Id": event.id},
        )
        return bool(ack.duplicate)

    async def _run(self) -> None:
        try:
            self._nc = await nats.connect(
                list(self.settings.servers),
                connect_timeout=max(1, int(self.settings.connect_timeout)),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_quiet,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
                pending_size=NO_RECONNECT_BUFFER,
            )
            self._js = self._nc.jetstream()
            self._acks = await AckInbox.open(self._nc)
            await self._setup()
        except Exception as error:  # the bus stays in spooling mode, and says why
            self.problem = str(error)
            LOGGER.error("event bus at %s unusable: %s", ",".join(self.settings.servers), error)
            return
        self._ready.set()
        watcher = self._loop.create_task(self._watch_acks())
        self._tasks.add(watcher)
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), 1.0)
            self._kick.clear()
            if self._closed:
                return
            if self._spooling and self._nc.is_connected and not await self._flush_in_thread():
                await asyncio.sleep(RETRY_SECONDS)  # the spool grows meanwhile: no busy loop

    async def _setup(self) -> None:
        assert self._js is not None and self._nc is not None
        deadline = time.monotonic() + 30
        while True:  # a new cluster elects its meta leader before JetStream answers
            try:
                await check_server(self._nc)
                await ensure_streams(self._js, self.settings)
                return
            except UnsupportedServer as error:
                if "too old" in str(error) or time.monotonic() > deadline:
                    raise
            except Exception:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)

    async def _disconnected(self) -> None:
        """nats-py calls this after the broken connection is closed and before it reconnects:
        what it had not written is dropped (see :mod:`plan2flow.events.acks`), and every event
        not acknowledged goes to the spool, in order."""
        if self._nc is not None:
            forget_unsent(self._nc)
        with self._lock:
            self._give_up("the connection to the NATS server was lost")

    async def _reconnected(self) -> None:
        self._kick.set()

    async def _flush_in_thread(self) -> bool:
        """Publish the spool; leave spooling mode once it is empty and the stream answers.
        False when the bus is not back yet."""
        report = await asyncio.to_thread(self._flush)
        self.flushed += report.published
        self.duplicates += report.duplicates
        if report.remaining or not await self._stream_answers():
            return False
        with self._lock:
            if self.spool.is_empty() and not self._window:
                self._spooling = False
        return True

    async def _stream_answers(self) -> bool:
        """Whether the stream is there to take publishes: after a server's restart, or while a
        cluster elects the stream's leader, it refuses them for a while, and pipelined publishes
        that began then could be stored out of order."""
        assert self._js is not None
        try:
            await asyncio.wait_for(
                self._js.stream_info(self.settings.stream), self.settings.publish_timeout
            )
        except Exception:
            return False
        return True

    def _flush(self) -> FlushReport:
        def send(events: Sequence[Event]) -> Sequence[bool]:
            assert self._acks is not None
            return asyncio.run_coroutine_threadsafe(
                publish_batch(self._acks, self.settings, events), self._loop
            ).result(self.settings.publish_timeout + 0.01 * len(events) + 1)

        return self.spool.flush(send)

    # --- live subscriptions --------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        overflow: Overflow = "report",
    ) -> Subscription:
        """Events stored from now on whose subject matches ``pattern``, in stream order (an
        ordered, ephemeral consumer). Messages that are not events are logged and skipped."""
        subscription = Subscription(
            pattern,
            handler,
            max_pending=max_pending,
            block_seconds=block_seconds,
            overflow=overflow,
            on_close=self._unsubscribe,
        )
        if not self.wait_connected(self.settings.connect_timeout):
            raise BusUnavailable(f"the event bus is not connected: {self.problem or 'no server'}")

        async def deliver(msg: Any) -> None:
            try:
                event = decode_event(msg.data)
            except InvalidEvent as error:
                LOGGER.error("not an event at %s: %s", msg.subject, error)
                return
            await asyncio.to_thread(subscription.offer, event)

        async def start() -> Any:
            from nats.js.api import ConsumerConfig, DeliverPolicy

            assert self._js is not None
            return await self._js.subscribe(
                self.settings.wire(pattern),
                stream=self.settings.stream,
                cb=deliver,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
            )

        sub = asyncio.run_coroutine_threadsafe(start(), self._loop).result(
            self.settings.connect_timeout + 5
        )
        self._subscriptions.append((subscription, sub))
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        for entry in list(self._subscriptions):
            if entry[0] is subscription:
                self._subscriptions.remove(entry)
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(entry[1].unsubscribe(), self._loop).result(5)

    def stats(self) -> dict[str, Any]:
        return {
            "backend": "nats",
            "servers": list(self.settings.servers),
            "connected": self.connected,
            "problem": self.problem,
            "acks": self.settings.acks,
            "published": self.published,
            "acked": self.acked,
            "in_flight": self.in_flight,
            "unsent_bytes": self._nc.pending_data_size if self._nc is not None else 0,
            "duplicates": self.duplicates,
            "spooled": self.spooled,
            "flushed": self.flushed,
            "dropped": self.dropped,
            "spool_pending": self.spool.pending(),
            "subscriptions": [s.stats() for s, _ in self._subscriptions],
        }

    def _at_exit(self) -> None:
        self.close(timeout=self.settings.publish_timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the acks of the events in flight and flush the spool if the bus is up
        (each within ``timeout``), then disconnect."""
        if self._closed:
            return
        atexit.unregister(self._at_exit)
        if self._window:
            self.flush(timeout)
        if self.connected and self._spooling:
            self.wait_flushed(timeout)
        for subscription, _ in list(self._subscriptions):
            subscription.close()
        with self._lock:
            self._closed = True
            if self._window:  # published while closing
                self._give_up("the bus was closed")
        self._call_soon(self._kick.set)

        async def stop() -> None:
            # Every task: a flush thread waits on the publishes it asked this loop for, holding
            # the spool's lock; cancelled, they end that wait now, not after publish_timeout.
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._nc is not None and not self._nc.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._nc.close(), timeout)

        with contextlib.suppress(Exception):
            self._main.cancel()
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout + 1)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
