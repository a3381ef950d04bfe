"""The audit journal's feed from the event bus: run, task and artifact events become entries.

:func:`audit_fields` says what entry an event makes (pure); :func:`record_event` appends it
under the key ``event:<event id>``, so a redelivered or re-published event (at-least-once
delivery, a follower and a run's own feed seeing the same event) is recorded once. Two ways to
run it:

* :func:`attach_audit` subscribes to a bus in this process (the runtime calls it when a run
  starts; the subscription is closed at the end). It records the events queued at a time in one
  transaction (a transaction per event cost ~2 ms each on SQLite, more than the event itself).
  An in-process subscriber that falls behind by more than its queue loses events, logged and
  counted by the bus: the durable way is
* :func:`follow`, a durable NATS consumer (``plan2flow audit follow``) that resumes where it
  stopped, acks an event only once its entry is committed, and feeds in stream order.

The actor of a fed entry is whoever runs the feed (:func:`~plan2flow.memory.audit.actor`); the
event's id, type, run, task and data are in ``detail`` (a run's parameter values are left out,
only their names kept: they may hold secrets, and the journal is not encrypted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from plan2flow.events import Batched, Event, EventBus, Subscription
from plan2flow.events.consume import ConsumeReport, Delivery, run_consumer
from plan2flow.events.jetstream import NatsSettings

from .audit import ACTIONS, KeyedEntry, Sessions, actor, append, append_keyed
from .audit_chain import format_time
from .db.models import AuditEntry
from .settings import check_tenant

RUN_ACTIONS = {
    "plan2flow.flow.started": "run.started",
    "plan2flow.flow.completed": "run.completed",
    "plan2flow.flow.failed": "run.failed",
    "plan2flow.flow.cancelled": "run.cancelled",
}
ARTIFACT_ACTIONS = {"plan2flow.artifact.stored": "artifact.stored"}
TASK_PREFIX = "plan2flow.task."
MAX_PENDING = 100_000
"""The in-process subscription's queue: a run's events wait here while the database is slow."""
MAX_BATCH = 200
"""The most events the in-process feed records in one transaction."""
LOGGER = logging.getLogger("plan2flow.memory")


@dataclass(frozen=True)
class AuditFields:
    """The entry an event makes: its action, subject, detail and idempotency key."""

    action: str
    subject: str
    detail: dict[str, Any]
    key: str


def audit_fields(event: Event) -> AuditFields | None:
    """The entry of a run, task or artifact event; None for any other (health probes, types
    this journal does not know).

    >>> from plan2flow.events import RunContext
    >>> run = RunContext(tenant="acme", plan="etl", graphhash=None, flowrunid="r1")
    >>> fields = audit_fields(run.task("failed", "load", attempt=2, message="exit 1"))
    >>> fields.action, fields.subject, fields.detail["data"]
    ('task.failed', 'etl/load', {'message': 'exit 1', 'state': 'Failed'})
    """
    data = event.to_dict().get("data") or {}
    subject = event.plan
    if event.type in RUN_ACTIONS:
        action = RUN_ACTIONS[event.type]
        if "parameters" in data:
            data = {**data, "parameters": sorted(data["parameters"])}
    elif event.type in ARTIFACT_ACTIONS:
        action = ARTIFACT_ACTIONS[event.type]
        subject = f"{event.plan}/{data.get('name', '')}"
    elif event.type.startswith(TASK_PREFIX) and f"task.{event.name}" in ACTIONS:
        action = f"task.{event.name}"
        subject = f"{event.plan}/{event.taskid}"
    else:
        return None
    detail = {
        "event_id": event.id,
        "event_type": event.type,
        "event_time": format_time(event.time),
        "plan": event.plan,
        "run": event.flowrunid,
        "task": event.taskid,
        "attempt": event.attempt,
        "graphhash": event.graphhash,
        "data": data,
    }
    return AuditFields(
        action,
        subject,
        {name: value for name, value in detail.items() if value is not None},
        f"event:{event.id}",
    )


def record_event(session: Session, event: Event, who: str) -> AuditEntry | None:
    """Append the entry of `event` to its tenant's journal (once per event id) and return it;
    None when the event is not one the journal records."""
    fields = audit_fields(event)
    if fields is None:
        return None
    return append(
        session,
        event.tenant,
        who,
        fields.action,
        fields.subject,
        fields.detail,
        key=fields.key,
    )


def keyed_entries(events: Sequence[Event]) -> list[KeyedEntry]:
    """The entries of the events the journal records, in order."""
    return [
        KeyedEntry(fields.action, fields.subject, fields.detail, fields.key)
        for fields in map(audit_fields, events)
        if fields is not None
    ]


def feed_handler(database: Sessions, tenant: str, who: str) -> Callable[[Event], None]:
    """A handler that records each event of `tenant` in a transaction of its own."""
    check_tenant(tenant)

    def handle(event: Event) -> None:
        if event.tenant != tenant:
            return
        with database.session(tenant) as session:
            record_event(session, event, who)

    return handle


def batch_handler(
    database: Sessions, tenant: str, who: str
) -> Callable[[Sequence[Event]], int | None]:
    """A handler that records the events of `tenant` it is given in one transaction; when that
    transaction fails, each event is tried again in a transaction of its own (their keys make
    the retry safe), so one event the journal cannot take costs no other its entry. It returns
    how many it could not record (the subscription counts them in ``errors``)."""
    check_tenant(tenant)
    one_by_one = feed_handler(database, tenant, who)

    def handle(events: Sequence[Event]) -> int | None:
        mine = [event for event in events if event.tenant == tenant]
        if not mine:
            return None
        try:
            with database.session(tenant) as session:
                append_keyed(session, tenant, who, keyed_entries(mine))
            return None
        except Exception:
            if len(mine) == 1:
                raise
            LOGGER.warning(
                "audit feed of %r: a batch of %d events failed; recording them one by one",
                tenant,
                len(mine),
                exc_info=True,
            )
            failed = 0
            for event in mine:
                try:
                    one_by_one(event)
                except Exception:
                    failed += 1
                    LOGGER.exception("audit feed of %r: event %s not recorded", tenant, event.id)
            return failed

    return handle


def attach_audit(
    bus: EventBus, database: Sessions, tenant: str, *, who: str | None = None
) -> Subscription:
    """Journal `tenant`'s run, task and artifact events published on `bus` from now on, in a
    thread of the subscription's, the events queued at a time in one transaction; close the
    subscription to stop (after what is queued)."""
    handler = batch_handler(database, tenant, who or actor())
    return bus.subscribe(
        f"plan2flow.{tenant}.>", Batched(handler, MAX_BATCH), max_pending=MAX_PENDING
    )


def durable_name(tenant: str) -> str:
    """The durable consumer of `tenant`'s follower: one per tenant, shared by its replicas."""
    return f"plan2flow-audit-{check_tenant(tenant)}"


def follow(
    database: Sessions,
    tenant: str,
    settings: NatsSettings,
    *,
    who: str | None = None,
    stop: threading.Event | None = None,
    idle_exit: float | None = None,
    durable: str | None = None,
) -> ConsumeReport:
    """Journal `tenant`'s events from the NATS stream with a durable consumer until `stop` is
    set (or, with `idle_exit`, nothing came for that many seconds). Events are handled one at a
    time in stream order; an event whose entry could not be committed is delivered again."""
    handle = feed_handler(database, tenant, who or actor())

    def on_event(event: Event, delivery: Delivery) -> None:
        handle(event)

    return run_consumer(
        settings,
        durable or durable_name(tenant),
        f"plan2flow.{tenant}.>",
        on_event,
        strict_order=True,
        stop=stop,
        idle_exit=idle_exit,
    )
