"""The TaskGraph as the runtime reads it, verified against the hash its module was made from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from plan2flow.compiler import TaskGraphDocument, TaskGraphError, read_taskgraph

from .errors import StaleModuleError


@dataclasses.dataclass(frozen=True)
class GraphTask:
    id: str
    type: str
    hash: str
    depends_on: tuple[str, ...]
    inputs: dict[str, str]
    outputs: tuple[str, ...]
    params: dict[str, Any]
    agent: dict[str, str] | None
    retries: int
    retry_delay_seconds: float
    timeout_seconds: float | None
    tags: tuple[str, ...]
    downstream: tuple[str, ...] = ()
    """The tasks that depend on this one directly (an approval's answer chooses among them)."""
    approvals: tuple[str, ...] = ()
    """The approval tasks this one depends on directly: their answers may skip it."""
    escalation: dict[str, Any] | None = None
    """The escalation policy of a `generate_code` task, when its plan declares one."""
    plan: str = ""
    """The plan's name (the escalation journal and its events are filed under it)."""
    checks: tuple[dict[str, Any], ...] = ()
    """For a `generate_code` task with an escalation policy: the `validate` and `test` tasks
    that take its code (type and params), whose checks its agent runs first."""


@dataclasses.dataclass(frozen=True)
class Graph:
    name: str
    hash: str
    path: Path
    params: dict[str, dict[str, Any]]
    max_parallelism: int
    tasks: dict[str, GraphTask]
    order: tuple[str, ...]
    budget: dict[str, Any] | None = None
    """The plan's budget (``usd``, ``period``), when it declares one."""

    @classmethod
    def from_document(cls, document: TaskGraphDocument, path: Path) -> Graph:
        types = {entry.id: entry.type for entry in document.tasks}
        checks = _checks(document)
        downstream: dict[str, list[str]] = {}
        for entry in document.tasks:
            for upstream in entry.depends_on:
                downstream.setdefault(upstream, []).append(entry.id)
        tasks = {
            entry.id: GraphTask(
                id=entry.id,
                type=entry.type,
                hash=entry.hash,
                depends_on=tuple(entry.depends_on),
                inputs=dict(entry.inputs),
                outputs=tuple(entry.outputs),
                params=entry.params,
                agent=entry.agent.model_dump() if entry.agent is not None else None,
                retries=entry.retries,
                retry_delay_seconds=entry.retry_delay_seconds,
                timeout_seconds=entry.timeout_seconds,
                tags=tuple(entry.tags),
                downstream=tuple(sorted(downstream.get(entry.id, ()))),
                approvals=tuple(up for up in entry.depends_on if types.get(up) == "approval"),
                escalation=entry.escalation,
                plan=document.plan.name,
                checks=checks.get(entry.id, ()) if entry.escalation is not None else (),
            )
            for entry in document.tasks
        }
        budget = document.settings.budget
        return cls(
            name=document.plan.name,
            hash=document.hash,
            path=path,
            params={name: param.model_dump() for name, param in document.params.items()},
            max_parallelism=document.settings.max_parallelism,
            tasks=tasks,
            order=tuple(entry.id for entry in document.tasks),
            budget=None if budget is None else budget.model_dump(),
        )


CHECKING_TYPES = ("validate", "test")


def _checks(document: TaskGraphDocument) -> dict[str, tuple[dict[str, Any], ...]]:
    """Per producer of code: the `validate` and `test` tasks whose input ``code`` is its output
    ``code`` (type and params), in the graph's order; a test matrix gives one per expansion."""
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in document.tasks:
        producer, _, output = entry.inputs.get("code", "").rpartition(".")
        if entry.type in CHECKING_TYPES and output == "code":
            found.setdefault(producer, []).append({"type": entry.type, "params": entry.params})
    return {producer: tuple(steps) for producer, steps in found.items()}


def read_graph(path: Path) -> Graph:
    """Read a TaskGraph file and check that its text still has the hash it records."""
    try:
        graph = read_taskgraph(path)
    except TaskGraphError as error:
        raise StaleModuleError(str(error)) from None
    return Graph.from_document(TaskGraphDocument.of(graph.document), path)


def load_graph(module_file: str, graph_file: str, expected_hash: str) -> Graph:
    """The graph a generated module was made from; refuses a module and graph that disagree."""
    path = Path(module_file).resolve().parent / graph_file
    if not path.exists():
        raise StaleModuleError(
            f"{Path(module_file).name} needs {graph_file} beside it; compile the plan again"
        )
    graph = read_graph(path)
    if graph.hash != expected_hash:
        raise StaleModuleError(
            f"{Path(module_file).name} was generated from graph {expected_hash}, but "
            f"{graph_file} is {graph.hash}: the module is stale; run `plan2flow compile` again"
        )
    return graph
