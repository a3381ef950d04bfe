"""The interface every backend implements, subscriptions with bounded queues, and
:func:`from_env`, which picks the backend.

A **publish never fails or hangs a run**: it returns one of :data:`Outcome` instead of raising
(except :class:`~plan2flow.events.errors.SlowSubscriberError`, and only when a subscription was
made with ``overflow="raise"``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from plan2flow.events.envelope import Event
from plan2flow.events.errors import SlowSubscriberError
from plan2flow.events.subjects import check_pattern, matches

LOGGER = logging.getLogger("plan2flow.events")

URL_ENV = "PLAN2FLOW_EVENTS_URL"
SWITCH_ENV = "PLAN2FLOW_EVENTS"
"""``off`` turns events off (:class:`NullBus`); anything else, or unset, leaves them on."""

Outcome = Literal["published", "duplicate", "spooled", "dropped", "off"]
"""What became of a publish: stored or delivered (``published``); recognised as an earlier
event's re-publish (``duplicate``); written to the local spool because the bus is down
(``spooled``); lost and counted, because the spool is full (``dropped``); events are off."""


@dataclass(frozen=True)
class Batched:
    """A handler of several events at a time: the subscription's thread passes it what is
    queued, up to ``max_batch`` events, in order. A subscriber whose work has a fixed cost per
    call (a database transaction) pays it once per batch instead of once per event, and a
    quiet bus still hands over each event as soon as it comes (a batch never waits to fill).
    ``handle`` returns how many of the events it failed on (None: none), or raises (all)."""

    handle: Callable[[Sequence[Event]], int | None]
    max_batch: int = 500

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


Handler = Callable[[Event], None] | Batched
Overflow = Literal["report", "raise"]

DEFAULT_MAX_PENDING = 10_000
DEFAULT_BLOCK_SECONDS = 5.0


class EventBus(Protocol):
    """What the runtime, the CLI and other parts use, whatever the backend."""

    def publish(self, event: Event) -> Outcome:
        """Publish one event; never raises for the bus being down."""
        ...

    def subscribe(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        overflow: Overflow = "report",
    ) -> Subscription:
        """Events published from now on whose subject matches ``pattern``, in order."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters of this bus (publishes, duplicates, spooled, dropped, subscriptions)."""
        ...

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` seconds) until every event published so far is stored or
        spooled; the runtime calls it at the end of a run. True when nothing had to be spooled."""
        ...

    def close(self) -> None:
        """Stop the subscriptions (and, for NATS, flush what it can and disconnect)."""
        ...


class Subscription:
    """A bounded queue of the events matching one pattern.

    With a ``handler``, a thread of its own calls it for each event in order (an exception is
    logged and counted in ``errors``, and the next event follows); a :class:`Batched` handler
    gets the events queued at that moment together (a failed batch counts each of its events
    in ``errors``). Without one, read the events
    with :meth:`get` or by iterating.

    **Slow subscriber policy.** A publisher whose event finds the queue full waits up to
    ``block_seconds`` for room. If there is still none, the event is not queued for this
    subscriber: ``dropped`` counts it and an error is logged (``overflow="report"``, the
    default), or :class:`SlowSubscriberError` is raised to the publisher (``overflow="raise"``).
    Nothing is ever dropped without being counted.
    """

    def __init__(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        overflow: Overflow = "report",
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.pattern = check_pattern(pattern)
        self.max_pending = max_pending
        self.block_seconds = block_seconds
        self.overflow = overflow
        self.delivered = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False
        self._queue: queue.Queue[Event | None] = queue.Queue(max_pending)
        self._on_close = on_close
        self._handled = threading.Condition()
        self._thread: threading.Thread | None = None
        if handler is not None:
            self._thread = threading.Thread(
                target=self._run, args=(handler,), name=f"plan2flow-events {pattern}", daemon=True
            )
            self._thread.start()

    def wants(self, subject: str) -> bool:
        return not self.closed and matches(self.pattern, subject)

    def offer(self, event: Event) -> bool:
        """Queue ``event`` (called by the bus); False when it was dropped under the policy."""
        try:
            self._queue.put(event, timeout=self.block_seconds)
            return True
        except queue.Full:
            self.dropped += 1
            message = (
                f"subscriber {self.pattern!r} is full ({self.max_pending} pending) after "
                f"{self.block_seconds:g}s: event {event.id} ({event.type}) not delivered to it "
                f"({self.dropped} so far)"
            )
            if self.overflow == "raise":
                raise SlowSubscriberError(message) from None
            LOGGER.error(message)
            return False

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds or once the subscription is closed."""
        if self.closed and self._queue.empty():
            return None
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is None:
            return None
        self.delivered += 1
        return event

    def __iter__(self) -> Iterator[Event]:
        while (event := self.get()) is not None:
            yield event

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def wait_handled(self, count: int, timeout: float) -> bool:
        """Wait until the handler has finished ``count`` events (tests and benchmarks)."""
        with self._handled:
            return self._handled.wait_for(lambda: self.delivered >= count, timeout)

    def _run(self, handler: Handler) -> None:
        batched = handler if isinstance(handler, Batched) else None
        while True:
            event = self._queue.get()
            if event is None:
                return
            events = [event]
            ended = batched is not None and self._drain(events, batched.max_batch)
            try:
                if isinstance(handler, Batched):
                    self.errors += min(handler.handle(events) or 0, len(events))
                else:
                    handler(event)
            except Exception:
                self.errors += len(events)
                LOGGER.exception("event handler of %r failed on %s", self.pattern, event.id)
            with self._handled:
                self.delivered += len(events)
                self._handled.notify_all()
            if ended:
                return

    def _drain(self, events: list[Event], max_batch: int) -> bool:
        """Add what is queued now to ``events``, up to ``max_batch``; True when the end marker
        was among it (the thread stops after this batch)."""
        while len(events) < max_batch:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return False
            if event is None:
                return True
            events.append(event)
        return False

    def close(self) -> None:
        """Stop: the handler's thread ends after the events already queued."""
        if self.closed:
            return
        self.closed = True
        if self._on_close is not None:
            self._on_close(self)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            if self._thread is not None:  # make room for the end marker: the handler stops
                self._queue.get_nowait()
                self._queue.put_nowait(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.block_seconds)

    def stats(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "pending": self.pending,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "errors": self.errors,
        }


class NullBus:
    """Events turned off (``PLAN2FLOW_EVENTS=off``): every publish returns ``off``."""

    def publish(self, event: Event) -> Outcome:
        return "off"

    def subscribe(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        overflow: Overflow = "report",
    ) -> Subscription:
        return Subscription(pattern, handler, max_pending=max_pending)

    def stats(self) -> dict[str, Any]:
        return {"backend": "off"}

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self) -> None:
        return None


_PROCESS_BUS: EventBus | None = None
_PROCESS_LOCK = threading.Lock()


def process_bus() -> EventBus:
    """The in-process bus shared by everything in this process (runs, ``tail``)."""
    global _PROCESS_BUS
    from plan2flow.events.memory import InProcessBus

    with _PROCESS_LOCK:
        if _PROCESS_BUS is None:
            _PROCESS_BUS = InProcessBus()
        return _PROCESS_BUS


_NATS_BUSES: dict[str, EventBus] = {}


def from_env(environ: Mapping[str, str] | None = None) -> EventBus:
    """The bus this process should publish to.

    ``PLAN2FLOW_EVENTS=off`` → :class:`NullBus`; ``PLAN2FLOW_EVENTS_URL`` set → one
    :class:`~plan2flow.events.jetstream.JetStreamBus` per URL per process (connected in the
    background; events spool locally until it is); otherwise :func:`process_bus`.
    """
    env = os.environ if environ is None else environ
    if env.get(SWITCH_ENV, "").lower() in {"off", "0", "false", "no"}:
        return NullBus()
    url = env.get(URL_ENV, "").strip()
    if not url:
        return process_bus()
    from plan2flow.events.jetstream import JetStreamBus, NatsSettings

    with _PROCESS_LOCK:
        bus = _NATS_BUSES.get(url)
        if bus is None:
            bus = _NATS_BUSES[url] = JetStreamBus(NatsSettings.from_env(env))
        return bus
