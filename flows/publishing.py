"""The run's events: published on this process's bus (in-process, or NATS JetStream when
``PLAN2FLOW_EVENTS_URL`` is set) and mirrored to Prefect's events. Nothing about events ever
fails a run."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plan2flow.events import Event, NullBus, RunContext, from_env

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
        for event in (built,) if isinstance(built, Event) else built:
            bus.publish(event)
    except Exception:
        LOGGER.exception("plan2flow: an event of run %s was not published", place.flow_run_id)


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
