"""The runtime's side of observability: Prefect's logs in ECS format with the run's ids, the
run's metrics in this process's registry, and spans of the flow run and of every task run.

Everything Prefect-specific lives here; :mod:`plan2flow.observability` knows nothing of Prefect.
Nothing here ever fails a run: a problem is logged and the run goes on.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from prefect.context import FlowRunContext, TaskRunContext

from plan2flow.observability import logs, tracing
from plan2flow.observability.feed import follow_process_bus
from plan2flow.observability.metrics import process_metrics
from plan2flow.observability.secrets import process_secrets, secret_values
from plan2flow.observability.settings import ecs_requested, metrics_requested

from . import cost_events  # noqa: F401  (registers plan2flow.agent.called)
from .publishing import emit
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")
PREFECT_STREAM_LOGGERS = ("", "uvicorn", "fastapi", "prefect._internal")
"""The root, and Prefect's loggers that write to a stream without propagating to it."""
_FLOW_SPANS: dict[str, Any] = {}
_RUNS: OrderedDict[str, dict[str, Any]] = OrderedDict()
"""The ids of the flow runs begun in this process, for Prefect's lines written after a run's
context ended ("Finished in state …"); the oldest forgotten first."""
REMEMBERED_RUNS = 1000
_BOUND: dict[str, Any] = {}
"""The log ids' token of each flow run of this process, reset when it ends."""
_LOCK = threading.Lock()
_TASK: contextvars.ContextVar[tuple[RunPlace, str, str, int] | None] = contextvars.ContextVar(
    "plan2flow_task", default=None
)
"""The run, task id, task type and attempt running in this context."""


class PrefectIdsFilter(logging.Filter):
    """Adds the ids Prefect knows to a record that lacks them: the flow run's (the correlation
    id), the plan (the flow's name), the graph hash (its version), the task and its attempt."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        known = _RUNS.get(str(fields.get("flow_run_id", "")))
        if known is not None and "plan2flow.correlation_id" not in fields:
            for name, value in known.items():
                fields.setdefault(name, value)
        if "plan2flow.correlation_id" not in fields:
            flow = FlowRunContext.get()
            if flow is not None and flow.flow_run is not None:
                fields["plan2flow.correlation_id"] = str(flow.flow_run.id)
                if flow.flow is not None:
                    fields.setdefault("plan2flow.plan", flow.flow.name)
                    if flow.flow.version:
                        fields.setdefault("plan2flow.graph_hash", flow.flow.version)
        if "plan2flow.task_id" not in fields:
            task = TaskRunContext.get()
            if task is not None:
                fields["plan2flow.task_id"] = task.task_run.name
                fields["plan2flow.attempt"] = max(task.task_run.run_count, 1)
                fields.setdefault("plan2flow.correlation_id", str(task.task_run.flow_run_id))
        return True


def configure_logs() -> None:
    """ECS lines for plan2flow's and Prefect's logs when ``PLAN2FLOW_LOG_FORMAT=ecs``
    (idempotent: called when the runtime is imported and again when a run starts, after
    Prefect may have configured its logging again)."""
    if ecs_requested():
        logs.install(PREFECT_STREAM_LOGGERS, filters=(PrefectIdsFilter(),))


def run_began(place: RunPlace, params: Mapping[str, Any]) -> None:
    """A flow run starts: its ids go on every log line of its context, its secret-named
    parameters are masked in logs, its events feed the metrics, and its span begins."""
    try:
        configure_logs()
        process_secrets().add(secret_values(params))
        token = logs.bind(
            correlation_id=place.flow_run_id,
            tenant=place.tenant,
            plan=place.plan,
            graph_hash=place.graph_hash,
        )
        with _LOCK:
            _BOUND[place.flow_run_id] = token
            _RUNS[place.flow_run_id] = logs.LogIds(
                place.flow_run_id, place.tenant, place.plan, place.graph_hash
            ).fields()
            while len(_RUNS) > REMEMBERED_RUNS:
                _RUNS.popitem(last=False)
        if metrics_requested():
            follow_process_bus(process_metrics())
        span = tracing.start_span(
            f"flow {place.plan}",
            attributes={
                tracing.CORRELATION: place.flow_run_id,
                "plan2flow.plan": place.plan,
                "plan2flow.tenant": place.tenant,
                "plan2flow.graph_hash": place.graph_hash,
            },
        )
        if span is not None:
            with _LOCK:
                _FLOW_SPANS[place.flow_run_id] = span
    except Exception:
        LOGGER.exception("plan2flow: observing run %s failed", place.flow_run_id)


def flow_traceparent(place: RunPlace) -> str:
    """The ``traceparent`` of the flow run's span begun in this process; empty without one."""
    with _LOCK:
        span = _FLOW_SPANS.get(place.flow_run_id)
    return (tracing.traceparent_of(span) or "") if span is not None else ""


def run_ended(place: RunPlace, failure: str | None = None) -> None:
    """The flow run's span ends (failed with `failure`'s message when there is one)."""
    with _LOCK:
        span = _FLOW_SPANS.pop(place.flow_run_id, None)
        token = _BOUND.pop(place.flow_run_id, None)
    if token is not None:
        logs.unbind(token)  # the caller's thread (a flow runs in it) keeps no run's ids
    tracing.end_span(span, error=failure)
    tracing.flush()


@contextlib.contextmanager
def task_scope(place: RunPlace, task_id: str, task_type: str, attempt: int) -> Iterator[None]:
    """One attempt of a task: its ids on every log line, its span (a child of the flow run's,
    in this process or, through the run's ``traceparent``, in another), ``TRACEPARENT`` for its
    subprocesses."""
    with _LOCK:
        flow_span = _FLOW_SPANS.get(place.flow_run_id)
    parent = tracing.context_of(flow_span) or tracing.parent_from(place.traceparent)
    attributes = {
        tracing.CORRELATION: place.flow_run_id,
        "plan2flow.plan": place.plan,
        "plan2flow.task_id": task_id,
        "plan2flow.task_type": task_type,
        "plan2flow.attempt": attempt,
    }
    with (
        logs.bound(
            correlation_id=place.flow_run_id,
            tenant=place.tenant,
            plan=place.plan,
            graph_hash=place.graph_hash,
            task_id=task_id,
            attempt=attempt,
        ),
        tracing.span(f"task {task_id}", parent=parent, attributes=attributes),
    ):
        token = _TASK.set((place, task_id, task_type, attempt))
        try:
            yield
        finally:
            _TASK.reset(token)
    if flow_span is None:
        # Another process than the flow's (a pool's worker): it may end without its exit
        # handlers, so its spans leave now. Nothing to do when traces are off.
        tracing.flush()


def agent_called(agent: str, seconds: float, outcome: str) -> None:
    """Publish ``plan2flow.agent.called`` for an agent call of the task running here (the
    metrics' latency histogram by agent); nothing outside a task."""
    current = _TASK.get()
    if current is None:
        return
    place, task_id, task_type, attempt = current
    emit(
        place,
        lambda run: run.event(
            "plan2flow.agent.called",
            taskid=task_id,
            attempt=attempt,
            agent=agent,
            tasktype=task_type,
            seconds=round(max(seconds, 0.0), 6),
            outcome=outcome,
        ),
    )
