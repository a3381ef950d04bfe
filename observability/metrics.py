"""The run-time metrics, fed by the event bus: one handler for every event type, no call site
edited. Labels are bounded: plan, task type, state, tier, model, agent, event kind; never a run
id or a task id (those go to logs and traces).

The registry is this object's own, so that a test, a ``metrics serve`` and a run's process each
count what they saw; :func:`process_metrics` is the runtime's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from plan2flow.events import Event

RUN_END_STATES = ("completed", "failed", "cancelled")
RUN_SECONDS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
TASK_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
AGENT_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
REMEMBERED_TASKS = 100_000
"""Task types of tasks in flight (the end events do not repeat them), oldest forgotten first."""


def data_of(event: Event) -> Mapping[str, Any]:
    """An event's data as a mapping, whether this process registered its type or not."""
    data = event.data
    if data is None:
        return {}
    if isinstance(data, Mapping):
        return data
    return data.model_dump()


class RunMetrics:
    """Counters, gauges and histograms of runs, tasks, escalations, approvals, agents, events
    and artifacts, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "plan2flow_runs",
            "Flow runs that ended, by plan and state",
            ["plan", "state"],
            registry=r,
        )
        self.runs_started = Counter(
            "plan2flow_runs_started", "Flow runs that started", ["plan"], registry=r
        )
        self.runs_in_progress = Gauge(
            "plan2flow_runs_in_progress", "Flow runs started and not ended", ["plan"], registry=r
        )
        self.run_started_oldest = Gauge(
            "plan2flow_run_oldest_started_timestamp_seconds",
            "When the oldest run still in progress started (0: none)",
            ["plan"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "plan2flow_run_duration_seconds",
            "Seconds from a flow run's start to its end",
            ["plan", "state"],
            buckets=RUN_SECONDS,
            registry=r,
        )
        self.task_runs = Counter(
            "plan2flow_task_runs",
            "Task runs that ended, by plan, task type and state",
            ["plan", "type", "state"],
            registry=r,
        )
        self.task_seconds = Histogram(
            "plan2flow_task_duration_seconds",
            "Seconds a completed task took (all attempts)",
            ["plan", "type"],
            buckets=TASK_SECONDS,
            registry=r,
        )
        self.retries = Counter(
            "plan2flow_task_retries",
            "Task attempts after a failure",
            ["plan", "type"],
            registry=r,
        )
        self.escalations = Counter(
            "plan2flow_escalations",
            "Escalations that ended, by outcome and tier reached",
            ["plan", "outcome", "tier"],
            registry=r,
        )
        self.variants = Counter(
            "plan2flow_escalation_variants",
            "Variants scored, by tier and model",
            ["tier", "model"],
            registry=r,
        )
        self.tokens = Counter(
            "plan2flow_escalation_tokens",
            "Model tokens used by escalations",
            ["plan", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "plan2flow_escalation_cost_usd",
            "Money spent on remote models (USD)",
            ["plan"],
            registry=r,
        )
        self.approvals_waiting = Gauge(
            "plan2flow_approvals_waiting",
            "Approvals asked and not answered",
            ["plan"],
            registry=r,
        )
        self.approval_oldest = Gauge(
            "plan2flow_approval_oldest_requested_timestamp_seconds",
            "When the oldest unanswered approval was asked (0: none)",
            ["plan"],
            registry=r,
        )
        self.approvals = Counter(
            "plan2flow_approvals",
            "Approvals answered, by how",
            ["plan", "outcome"],
            registry=r,
        )
        self.agent_healthy = Gauge(
            "plan2flow_agent_healthy",
            "1 when the agent's last health check passed",
            ["agent"],
            registry=r,
        )
        self.agent_checks = Counter(
            "plan2flow_agent_health_checks",
            "Agent health checks, by result",
            ["agent", "healthy"],
            registry=r,
        )
        self.agent_health_latency = Gauge(
            "plan2flow_agent_health_latency_seconds",
            "Seconds the agent's last health check took",
            ["agent"],
            registry=r,
        )
        self.agent_seconds = Histogram(
            "plan2flow_agent_call_duration_seconds",
            "Seconds an agent block took to execute a task, by agent and outcome",
            ["agent", "outcome"],
            buckets=AGENT_SECONDS,
            registry=r,
        )
        self.compute_seconds = Counter(
            "plan2flow_compute_seconds",
            "Wall seconds of task attempts charged as compute",
            ["plan", "type"],
            registry=r,
        )
        self.costs = Counter(
            "plan2flow_cost_usd",
            "Money charged to runs (USD), by kind: compute or model",
            ["plan", "kind"],
            registry=r,
        )
        self.budget_stops = Counter(
            "plan2flow_budget_stops",
            "Tasks not started because a budget was spent, by the budget's scope",
            ["plan", "scope"],
            registry=r,
        )
        self.consumed = Counter(
            "plan2flow_events_consumed",
            "Events this process's metrics handled, by kind",
            ["kind"],
            registry=r,
        )
        self.lag = Histogram(
            "plan2flow_event_lag_seconds",
            "Seconds from an event's time to its handling",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
            registry=r,
        )
        self.artifacts = Counter(
            "plan2flow_artifacts_stored", "Artifacts stored by tasks", ["plan"], registry=r
        )
        self.artifact_bytes = Counter(
            "plan2flow_artifact_bytes",
            "Bytes of the artifacts stored by tasks",
            ["plan"],
            registry=r,
        )
        self._lock = threading.Lock()
        self._types: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._running: dict[str, tuple[str, float]] = {}
        self._waiting: dict[tuple[str, str], tuple[str, float]] = {}
        self._handlers: dict[str, Callable[[Event, Mapping[str, Any]], None]] = {
            "flow.started": self._flow_started,
            "flow.completed": self._flow_ended,
            "flow.failed": self._flow_ended,
            "flow.cancelled": self._flow_ended,
            "task.started": self._task_started,
            "task.retrying": self._task_retrying,
            "task.completed": self._task_ended,
            "task.failed": self._task_ended,
            "task.not_run": self._task_ended,
            "task.cached": self._task_ended,
            "task.skipped": self._task_ended,
            "approval.requested": self._approval_requested,
            "approval.given": self._approval_answered,
            "approval.timed_out": self._approval_answered,
            "escalation.variant_scored": self._variant_scored,
            "escalation.finished": self._escalation_finished,
            "agent.health": self._agent_health,
            "artifact.stored": self._artifact_stored,
            "agent.called": self._agent_called,
            "cost.charged": self._cost_charged,
            "budget.stopped": self._budget_stopped,
        }

    def observe(self, event: Event) -> None:
        """Count one event (the bus subscription's handler)."""
        kind = event.type.removeprefix("plan2flow.")
        self.consumed.labels(kind).inc()
        self.lag.observe(max(time.time() - event.time.timestamp(), 0.0))
        handler = self._handlers.get(kind)
        if handler is not None:
            with self._lock:
                handler(event, data_of(event))

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)

    # --- runs and tasks ----------------------------------------------------------------------

    def _flow_started(self, event: Event, data: Mapping[str, Any]) -> None:
        if event.flowrunid in self._running:
            return
        self.runs_started.labels(event.plan).inc()
        for state in RUN_END_STATES:  # at 0 from the start: increase() sees the first failure
            self.runs.labels(event.plan, state)
        self._running[event.flowrunid or ""] = (event.plan, event.time.timestamp())
        self._refresh_running(event.plan)

    def _flow_ended(self, event: Event, data: Mapping[str, Any]) -> None:
        state = event.type.rsplit(".", 1)[1]
        self.runs.labels(event.plan, state).inc()
        began = self._running.pop(event.flowrunid or "", None)
        seconds = data.get("duration_seconds")
        if seconds is None and began is not None:
            seconds = event.time.timestamp() - began[1]
        if seconds is not None:
            self.run_seconds.labels(event.plan, state).observe(seconds)
        for key in [k for k in self._types if k[0] == event.flowrunid]:
            del self._types[key]
        self._refresh_running(event.plan)

    def _refresh_running(self, plan: str) -> None:
        starts = [t for p, t in self._running.values() if p == plan]
        self.runs_in_progress.labels(plan).set(len(starts))
        self.run_started_oldest.labels(plan).set(min(starts, default=0))

    def _task_type(self, event: Event) -> str:
        return self._types.get((event.flowrunid or "", event.taskid or ""), "unknown")

    def _task_started(self, event: Event, data: Mapping[str, Any]) -> None:
        self._types[(event.flowrunid or "", event.taskid or "")] = data.get("tasktype") or "unknown"
        while len(self._types) > REMEMBERED_TASKS:
            self._types.popitem(last=False)

    def _task_retrying(self, event: Event, data: Mapping[str, Any]) -> None:
        self.retries.labels(event.plan, self._task_type(event)).inc()

    def _task_ended(self, event: Event, data: Mapping[str, Any]) -> None:
        state = event.type.rsplit(".", 1)[1]
        kind = self._task_type(event)
        self.task_runs.labels(event.plan, kind, state).inc()
        seconds = data.get("duration_seconds")
        if state == "completed" and seconds is not None:
            self.task_seconds.labels(event.plan, kind).observe(seconds)

    # --- approvals, escalations, agents, artifacts -------------------------------------------

    def _approval_requested(self, event: Event, data: Mapping[str, Any]) -> None:
        self._waiting[(event.flowrunid or "", event.taskid or "")] = (
            event.plan,
            event.time.timestamp(),
        )
        self._refresh_waiting(event.plan)

    def _approval_answered(self, event: Event, data: Mapping[str, Any]) -> None:
        self._waiting.pop((event.flowrunid or "", event.taskid or ""), None)
        outcome = "timed_out" if event.type.endswith("timed_out") else "given"
        self.approvals.labels(event.plan, outcome).inc()
        self._refresh_waiting(event.plan)

    def _refresh_waiting(self, plan: str) -> None:
        asked = [t for p, t in self._waiting.values() if p == plan]
        self.approvals_waiting.labels(plan).set(len(asked))
        self.approval_oldest.labels(plan).set(min(asked, default=0))

    def _variant_scored(self, event: Event, data: Mapping[str, Any]) -> None:
        self.variants.labels(str(data.get("tier")), str(data.get("model") or "local")).inc()

    def _escalation_finished(self, event: Event, data: Mapping[str, Any]) -> None:
        self.escalations.labels(
            event.plan, str(data.get("outcome")), str(data.get("tier_reached"))
        ).inc()
        self.tokens.labels(event.plan, "prompt").inc(int(data.get("prompt_tokens") or 0))
        self.tokens.labels(event.plan, "completion").inc(int(data.get("completion_tokens") or 0))
        self.cost.labels(event.plan).inc(float(data.get("cost_usd") or 0.0))
        self.costs.labels(event.plan, "model").inc(float(data.get("cost_usd") or 0.0))

    def _agent_health(self, event: Event, data: Mapping[str, Any]) -> None:
        agent, healthy = str(data.get("agent")), bool(data.get("healthy"))
        self.agent_healthy.labels(agent).set(1 if healthy else 0)
        self.agent_checks.labels(agent, str(healthy).lower()).inc()
        latency = data.get("latency_seconds")
        if latency is not None:
            self.agent_health_latency.labels(agent).set(float(latency))

    def _agent_called(self, event: Event, data: Mapping[str, Any]) -> None:
        agent, outcome = str(data.get("agent")), str(data.get("outcome"))
        self.agent_seconds.labels(agent, outcome).observe(float(data.get("seconds") or 0.0))

    def _cost_charged(self, event: Event, data: Mapping[str, Any]) -> None:
        kind = str(data.get("tasktype") or "unknown")
        self.compute_seconds.labels(event.plan, kind).inc(float(data.get("seconds") or 0.0))
        self.costs.labels(event.plan, str(data.get("kind") or "compute")).inc(
            float(data.get("usd") or 0.0)
        )

    def _budget_stopped(self, event: Event, data: Mapping[str, Any]) -> None:
        self.budget_stops.labels(event.plan, str(data.get("scope"))).inc()

    def _artifact_stored(self, event: Event, data: Mapping[str, Any]) -> None:
        self.artifacts.labels(event.plan).inc()
        self.artifact_bytes.labels(event.plan).inc(int(data.get("size") or 0))


class BusCollector(Collector):
    """The event bus's own counters, read at each scrape from its ``stats()``: publishes,
    duplicates, spooled and dropped events, the spool's backlog, subscribers' drops."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Any]:
        stats = self.stats()
        backend = str(stats.get("backend", "unknown"))
        for name, key, help_text in (
            ("plan2flow_event_bus_published", "published", "Events published on this bus"),
            ("plan2flow_event_bus_duplicates", "duplicates", "Re-publishes recognised"),
            ("plan2flow_event_bus_spooled", "spooled", "Events spooled while the bus was down"),
            ("plan2flow_event_bus_dropped", "dropped", "Events lost (the spool was full)"),
        ):
            family = CounterMetricFamily(name, help_text, labels=["backend"])
            family.add_metric([backend], float(stats.get(key) or 0))
            yield family
        pending = GaugeMetricFamily(
            "plan2flow_event_bus_spool_pending",
            "Events in the local spool waiting for the bus",
            labels=["backend"],
        )
        pending.add_metric([backend], float(stats.get("spool_pending") or 0))
        yield pending
        dropped = CounterMetricFamily(
            "plan2flow_event_subscriber_dropped",
            "Events not delivered to a slow subscriber of this process",
            labels=["backend"],
        )
        subscriptions = stats.get("subscriptions") or []
        dropped.add_metric([backend], float(sum(s.get("dropped", 0) for s in subscriptions)))
        yield dropped


class StreamCollector(Collector):
    """The JetStream side, read at each scrape: the dead-letter queue's size, the stream's
    messages and each durable consumer's backlog (``None`` from `stats`: nothing to report)."""

    def __init__(self, stats: Callable[[], Mapping[str, Any] | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Any]:
        stats = self.stats()
        dlq = GaugeMetricFamily("plan2flow_event_dlq_messages", "Messages in the dead-letter queue")
        stream = GaugeMetricFamily(
            "plan2flow_event_stream_messages", "Events kept in the JetStream stream"
        )
        pending = GaugeMetricFamily(
            "plan2flow_event_consumer_pending",
            "Events a durable consumer has not handled yet",
            labels=["consumer"],
        )
        if stats is not None:
            dlq.add_metric([], float(stats["dlq"]["messages"]))
            stream.add_metric([], float(stats["stream"]["messages"]))
            for consumer in stats["consumers"]:
                pending.add_metric([str(consumer["name"])], float(consumer["pending"]))
        yield from (dlq, stream, pending)


_PROCESS: RunMetrics | None = None
_PROCESS_LOCK = threading.Lock()


def process_metrics() -> RunMetrics:
    """The registry of this process (the runtime's, ``metrics serve``'s)."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = RunMetrics()
        return _PROCESS
