"""The compiler, top to bottom: load → validate → decompose → link → order → check → TaskGraph
→ flow module.

A pure function of the plan text: no files, environment, clock-dependent output or network.
Every stage reports all it finds; errors stop the pipeline only where a later stage needs what an
earlier one could not produce, and then all of them are raised at once as one :class:`PlanError`.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from .codegen import render_flow
from .decompose import Origin, decompose
from .errors import (
    Diagnostic,
    PlanError,
    Severity,
    cap_diagnostics,
    has_errors,
    promote_warnings,
)
from .graph.link import link
from .graph.order import topological_order
from .graph.taskgraph import TaskGraph, build_taskgraph
from .load import DEFAULT_LIMITS, Limits, SourceMap, load_plan
from .spec.slo import Slo
from .validate.approval_rules import check_approvals
from .validate.cycles import check_cycles
from .validate.escalation_rules import check_escalation
from .validate.graph_rules import GRAPH_RULES, check_deploys_verified
from .validate.name_rules import check_names
from .validate.plan_rules import check_plan
from .validate.schema import check_schema

Observer = Callable[[str, float], None]
"""Receives each stage's name and duration in seconds (for metrics); never affects output."""


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a task of the graph comes from: the rule that made it and the YAML that it was made
    from. Lines are kept out of the TaskGraph itself, so comments and reordering change no byte."""

    task: str
    rule: str
    source: str
    pointer: str
    line: int
    column: int


@dataclasses.dataclass(frozen=True)
class CompileResult:
    """A compiled plan and the warnings found on the way."""

    graph: TaskGraph
    flow_source: str
    """The generated Prefect flow module (``<name>_flow.py``)."""
    warnings: tuple[Diagnostic, ...]
    source_map: SourceMap
    origins: Mapping[str, Origin] = dataclasses.field(default_factory=dict)
    slo: Slo | None = None
    """The plan's service-level objectives (not in the TaskGraph: they never change its hash)."""

    def provenance(self) -> list[Provenance]:
        """Every task's origin, located in the source, in the graph's task order."""
        found = []
        for task in self.graph.document["tasks"]:
            origin = self.origins[task["id"]]
            span = self.source_map.span(origin.pointer)
            found.append(
                Provenance(
                    task["id"], origin.rule, origin.source, origin.pointer, span.line, span.column
                )
            )
        return found


def _locate(
    source_map: SourceMap, diagnostics: list[Diagnostic], limits: Limits
) -> tuple[Diagnostic, ...]:
    """Locate the diagnostics that do not know their line yet (the loader's already do), and
    keep the first ``limits.max_diagnostics`` of them."""
    return cap_diagnostics(source_map.locate_all(diagnostics), limits.max_diagnostics)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Large plans allocate millions of small objects; CPython's cyclic collector would scan
    them again and again (measured: 2.4x slower YAML loading at 10,000 tasks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # Move what survived into the oldest generation without scanning it now.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def compile_plan(
    source: str | bytes,
    filename: str = "<plan>",
    *,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    observe: Observer | None = None,
) -> CompileResult:
    """Compile plan text into a TaskGraph, or raise :class:`PlanError` with every problem in it.

    >>> plan = '''
    ... apiVersion: plan2flow/v1
    ... kind: Plan
    ... metadata: {name: hello}
    ... tasks:
    ...   - {id: a, type: noop}
    ...   - {id: b, type: noop, depends_on: [a]}
    ... '''
    >>> result = compile_plan(plan, "hello.yaml")
    >>> [task["id"] for task in result.graph.tasks]
    ['a', 'b']
    """
    clock = time.perf_counter
    started = clock()

    def stage(name: str) -> None:
        nonlocal started
        if observe is not None:
            now = clock()
            observe(name, now - started)
            started = now

    with _collector_paused():
        loaded = load_plan(source, filename, limits)
        stage("load")
        source_map = loaded.source_map
        validated, found = check_schema(loaded.data, limits)
        diagnostics = [*loaded.problems, *found]
        if any(d.code == "P2F100" for d in found):
            raise PlanError([*loaded.problems, *source_map.locate_all(found)])
        diagnostics += check_plan(validated.spec, loaded.data)
        diagnostics += check_names(validated)
        diagnostics += check_approvals(validated)
        diagnostics += check_escalation(validated)
        stage("validate")
        decomposition, found = decompose(validated, limits)
        diagnostics += found
        stage("decompose")
        graph, found = link(decomposition, validated.unchecked_ids, validated.unchecked_components)
        diagnostics += found
        order, remaining = topological_order(graph)
        if remaining:
            diagnostics += check_cycles(graph, remaining)
        elif not has_errors(diagnostics):
            for rule in GRAPH_RULES:
                diagnostics += rule(graph)
        elif not (validated.unchecked_ids or validated.unchecked_components):
            diagnostics += check_deploys_verified(graph)
        stage("link")
        if strict:
            diagnostics = list(promote_warnings(diagnostics))
        if has_errors(diagnostics):
            raise PlanError(_locate(source_map, diagnostics, limits))
        taskgraph = build_taskgraph(validated.spec, graph, order)
        stage("graph")
        flow_source = render_flow(taskgraph, filename)
        stage("codegen")
    warnings = _locate(
        source_map, [d for d in diagnostics if d.severity is Severity.WARNING], limits
    )
    origins = {task_id: node.origin for task_id, node in graph.nodes.items()}
    return CompileResult(
        taskgraph, flow_source, warnings, source_map, origins, slo=validated.spec.slo
    )
