"""Compile metrics in Prometheus text format, for node-exporter's textfile collector."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from .errors import Diagnostic
from .files import check_target


@dataclasses.dataclass(frozen=True)
class PlanMetrics:
    plan: str
    outcome: str  # "ok", "invalid" or "unreadable"
    tasks: int = 0
    edges: int = 0
    stage_seconds: tuple[tuple[str, float], ...] = ()


def write_metrics(
    path: Path, plans: Sequence[PlanMetrics], diagnostics: Sequence[Diagnostic]
) -> None:
    """Write the metrics file atomically (prometheus-client renames a temporary file)."""
    registry = CollectorRegistry()
    tasks = Gauge(
        "plan2flow_compile_tasks", "Tasks in the compiled graph", ["plan"], registry=registry
    )
    edges = Gauge(
        "plan2flow_compile_edges", "Edges in the compiled graph", ["plan"], registry=registry
    )
    seconds = Gauge(
        "plan2flow_compile_stage_seconds",
        "Seconds spent in each compiler stage (load, validate, decompose, link, graph, codegen)",
        ["plan", "stage"],
        registry=registry,
    )
    outcomes = Gauge(
        "plan2flow_compile_plans", "Plans checked, by outcome", ["outcome"], registry=registry
    )
    found = Gauge(
        "plan2flow_compile_diagnostics",
        "Diagnostics reported, by code and severity",
        ["code", "severity"],
        registry=registry,
    )
    for outcome in ("ok", "invalid", "unreadable"):
        outcomes.labels(outcome).set(sum(p.outcome == outcome for p in plans))
    for plan in plans:
        if plan.outcome == "ok":
            tasks.labels(plan.plan).set(plan.tasks)
            edges.labels(plan.plan).set(plan.edges)
        for stage, value in plan.stage_seconds:
            seconds.labels(plan.plan, stage).set(value)
    for (code, severity), count in sorted(
        Counter((d.code, d.severity.value) for d in diagnostics).items()
    ):
        found.labels(code, severity).set(count)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
