"""Typed events of every plan run: a CloudEvents 1.0 envelope, an in-process bus by default,
NATS JetStream when events must survive crashes and reach other machines.

The runtime publishes one event per transition::

    from plan2flow.events import RunContext, from_env

    bus = from_env()                      # once per process
    run = RunContext(tenant="default", plan=name, graphhash=hash, flowrunid=flow_run_id)
    bus.publish(run.task("started", task_id, attempt=1))

``publish`` never raises for the bus being down and never waits longer than the publish
timeout. The ``plan2flow events`` commands call the functions of :mod:`plan2flow.events.admin`.
This package imports neither Prefect nor any other part of plan2flow.
"""

from __future__ import annotations

from plan2flow.events.bus import (
    Batched,
    EventBus,
    NullBus,
    Outcome,
    Subscription,
    from_env,
    process_bus,
)
from plan2flow.events.envelope import (
    Event,
    EventData,
    EventType,
    decode_event,
    event_id,
    event_type,
    event_types,
    new_event,
    register_event_type,
)
from plan2flow.events.errors import (
    BusUnavailable,
    EventError,
    InvalidEvent,
    InvalidSubject,
    NatsRequired,
    SlowSubscriberError,
    UnsupportedServer,
)
from plan2flow.events.kinds import RunContext, default_tenant
from plan2flow.events.memory import InProcessBus
from plan2flow.events.subjects import check_pattern, label_for, matches, subject_for

__all__ = [
    "Batched",
    "BusUnavailable",
    "Event",
    "EventBus",
    "EventData",
    "EventError",
    "EventType",
    "InProcessBus",
    "InvalidEvent",
    "InvalidSubject",
    "NatsRequired",
    "NullBus",
    "Outcome",
    "RunContext",
    "SlowSubscriberError",
    "Subscription",
    "UnsupportedServer",
    "check_pattern",
    "decode_event",
    "default_tenant",
    "event_id",
    "event_type",
    "event_types",
    "from_env",
    "label_for",
    "matches",
    "new_event",
    "process_bus",
    "register_event_type",
    "subject_for",
]
