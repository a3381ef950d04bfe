"""The run's events: published on this process's bus (in-process, or NATS JetStream when
``PLAN2FLOW_EVENTS_URL`` is set) and mirrored to Prefect's events. Nothing about events ever
fails a run."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from plan2flow.events import Event, EventBus, InProcessBus, NullBus, RunContext, from_env
from plan2flow.events.relay import RelayEndpoint, process_relay, relayed

from . import events
from .artifacts import TaskOutput, size_of
from .options import OPTIONS
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")
FLUSH_SECONDS = 5.0
"""How long the end of a run (or of a task in another process) waits for the bus's acks."""
_HOST = socket.gethostname()


def this_process() -> str:
    return f"{_HOST}:{os.getpid()}"


def emit(
    place: RunPlace,
    build: Callable[[RunContext], Event | Sequence[Event]],
    *,
    final: bool = False,
) -> None:
    """Publish events of the run on this process's bus (``plan2flow.events.from_env``): the
    in-process bus, or NATS when ``PLAN2FLOW_EVENTS_URL`` is set. Nothing is built when events
    are off or the run was cancelled here (unless this is the `final` ``flow.cancelled``), and
    nothing about events ever fails a run: the bus spools what it cannot send, and anything
    else is logged."""
    run_options = OPTIONS.get()
    halted = run_options.cancelled if run_options is not None else None
    if not final and halted is not None and halted.is_set():
        return
    try:
        bus = from_env()
        if isinstance(bus, NullBus):
            return
        built = build(place.events())
        _publish(place, bus, (built,) if isinstance(built, Event) else built)
    except Exception:
        LOGGER.exception("plan2flow: an event of run %s was not published", place.flow_run_id)


def relay_for(bus: EventBus) -> RelayEndpoint | None:
    """Where the run's tasks in other processes send their events: this process's relay into
    its in-process bus; None for the other buses, which every process reaches by itself (and
    when the relay cannot start: those tasks' events then stay in their processes)."""
    if not isinstance(bus, InProcessBus):
        return None
    try:
        return process_relay().endpoint
    except Exception:
        LOGGER.exception("plan2flow: the event relay did not start")
        return None


def _publish(place: RunPlace, bus: EventBus, events: Iterable[Event]) -> None:
    """On this process's bus; or, in a task in another process than the flow's while the bus
    is in-process, on the flow's process's bus through its relay (this process's bus has no
    subscribers: they are in the flow's process). Should the relay be out of reach, the events
    stay here, and a warning says so."""
    relay = place.relay
    if relay is None or not isinstance(bus, InProcessBus) or place.process == this_process():
        for event in events:
            bus.publish(event)
        return
    publisher = relayed(relay)
    for event in events:
        try:
            publisher.publish(event)
        except (OSError, EOFError) as error:
            LOGGER.warning(
                "plan2flow: event %s of run %s stays in process %s: the flow's process (%s) "
                "cannot be reached: %s",
                event.type,
                place.flow_run_id,
                this_process(),
                place.process,
                error,
            )
            bus.publish(event)


def flush_bus(timeout: float = FLUSH_SECONDS) -> None:
    """Wait, bounded, until this process's bus has stored or spooled what it was given."""
    try:
        from_env().flush(timeout)
    except Exception:
        LOGGER.exception("plan2flow: flushing the event bus failed")


def mirror_to_prefect(
    place: RunPlace, what: str, task_id: str, logger: Any = None, **payload: Any
) -> None:
    events.publish(
        what,
        plan=place.plan,
        task_id=task_id,
        graph_hash=place.graph_hash,
        flow_run_id=place.flow_run_id,
        logger=logger,
        **payload,
    )


def stored_events(run: RunContext, task_id: str, attempt: int, output: TaskOutput) -> list[Event]:
    """One ``artifact.stored`` per output a task published under its cache key."""
    return [
        run.event(
            "plan2flow.artifact.stored",
            taskid=task_id,
            attempt=attempt,
            name=name,
            path=artifact.path,
            digest=artifact.digest,
            size=size_of(Path(artifact.path)),
        )
        for name, artifact in sorted(output.artifacts.items())
    ]
