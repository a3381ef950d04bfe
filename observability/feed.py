"""What feeds the metrics: a subscription on this process's bus, or a durable consumer of the
NATS JetStream stream when ``PLAN2FLOW_EVENTS_URL`` is set (every process's events)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from plan2flow.events import EventBus, InProcessBus, NullBus, Subscription, from_env
from plan2flow.events.bus import URL_ENV

from .metrics import BusCollector, RunMetrics

ALL_EVENTS = "plan2flow.>"
DURABLE = "plan2flow-metrics"
_FOLLOWED: dict[int, Subscription] = {}
_LOCK = threading.Lock()


def follow(bus: EventBus, metrics: RunMetrics, pattern: str = ALL_EVENTS) -> Subscription:
    """Count every event of `bus` matching `pattern` in `metrics`, once per pair; the bus's
    own counters are read at each scrape."""
    key = id(metrics) ^ id(bus)
    with _LOCK:
        existing = _FOLLOWED.get(key)
        if existing is not None and not existing.closed:
            return existing
        subscription = bus.subscribe(pattern, metrics.observe)
        if not isinstance(bus, NullBus):
            metrics.registry.register(BusCollector(bus.stats))
        _FOLLOWED[key] = subscription
        return subscription


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

    thread = threading.Thread(target=consume, name="plan2flow-metrics-nats", daemon=True)
    thread.start()
    return thread


def nats_requested(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(URL_ENV, "").strip())
