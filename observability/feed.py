"""What feeds the metrics: a subscription on this process's bus, or a durable consumer of the
NATS JetStream stream when ``PLAN2FLOW_EVENTS_URL`` is set (every process's events)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from plan2flow.events import EventBus, InProcessBus, NullBus, Subscription, from_env
from plan2flow.events.bus import URL_ENV

from .metrics import BusCollector, RunMetrics, StreamCollector

LOGGER = logging.getLogger("plan2flow.observability")
ALL_EVENTS = "plan2flow.>"
DURABLE = "plan2flow-metrics"
_FOLLOWED: dict[tuple[int, int], tuple[Subscription, EventBus, int]] = {}
_LOCK = threading.Lock()


def follow(bus: EventBus, metrics: RunMetrics, pattern: str = ALL_EVENTS) -> Subscription:
    """Count every event of `bus` matching `pattern` in `metrics`, once per pair; the bus's
    own counters are read at each scrape."""
    key = (id(metrics), id(bus))
    with _LOCK:
        existing = _FOLLOWED.get(key)
        if existing is not None and not existing[0].closed:
            return existing[0]
        subscription = bus.subscribe(pattern, metrics.observe)
        if existing is None and not isinstance(bus, NullBus):  # once: no duplicate families
            metrics.registry.register(BusCollector(bus.stats))
        published = bus.published if isinstance(bus, InProcessBus) else 0
        _FOLLOWED[key] = (subscription, bus, published)
        return subscription


def settle(metrics: RunMetrics, timeout: float = 5.0) -> bool:
    """Wait until `metrics` has counted every event its in-process buses were given so far
    (before a run's metrics are written out); False after `timeout` seconds."""
    with _LOCK:
        followed = [f for k, f in _FOLLOWED.items() if k[0] == id(metrics)]
    deadline = time.monotonic() + timeout
    for subscription, bus, before in followed:
        if isinstance(bus, InProcessBus) and not subscription.closed:
            left = max(deadline - time.monotonic(), 0.0)
            if not subscription.wait_handled(bus.published - before, left):
                return False
    return True


def follow_process_bus(metrics: RunMetrics) -> Subscription | None:
    """Follow this process's bus when it is the in-process one (the runs of this process);
    None when events are off or go to NATS (``metrics serve`` consumes those)."""
    bus = from_env()
    if not isinstance(bus, InProcessBus):
        return None
    return follow(bus, metrics)


def follow_nats(
    metrics: RunMetrics,
    stop: threading.Event,
    environ: Mapping[str, str],
    durable: str = DURABLE,
) -> threading.Thread:
    """Count the events of every process from the JetStream stream, in a thread, until `stop`
    (a durable consumer: a restarted server goes on where it stopped)."""
    from plan2flow.events.consume import run_consumer
    from plan2flow.events.jetstream import NatsSettings

    settings = NatsSettings.from_env(environ)

    def consume() -> None:
        run_consumer(
            settings, durable, ALL_EVENTS, lambda event, _: metrics.observe(event), stop=stop
        )

    metrics.registry.register(StreamCollector(lambda: _stream_stats(settings)))
    thread = threading.Thread(target=consume, name="plan2flow-metrics-nats", daemon=True)
    thread.start()
    return thread


def _stream_stats(settings: Any) -> Mapping[str, Any] | None:
    from plan2flow.events.admin import stats

    try:
        return stats(settings)
    except Exception as error:  # a scrape shows what it can; the next one tries again
        LOGGER.warning("plan2flow: the event stream's statistics are unavailable: %s", error)
        return None


def nats_requested(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(URL_ENV, "").strip())
