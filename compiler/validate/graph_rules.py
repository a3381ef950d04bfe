"""Checks on the linked, acyclic graph: unconsumed artifacts, disconnected tasks, release rules."""

from __future__ import annotations

from collections import deque

from ..errors import Diagnostic, diagnostic
from ..graph.link import LinkedGraph


def check_unconsumed_artifacts(graph: LinkedGraph) -> list[Diagnostic]:
    """A written task's output that nothing consumes, unless the task is a sink (its outputs are
    the results). Generated reports (`validate.report`, `test.junit`) and an approval's
    `decision` are results by design."""
    consumed = {ref for refs in graph.inputs.values() for ref in refs.values()}
    problems = []
    for node in graph.nodes.values():
        if not node.origin.written or not graph.downstream[node.id] or node.type == "approval":
            continue
        for index, name in enumerate(node.outputs):
            if f"{node.id}.{name}" not in consumed:
                problems.append(
                    diagnostic(
                        "P2F302",
                        f"artifact '{node.id}.{name}' is produced but never consumed",
                        f"{node.origin.pointer}/outputs/{index}",
                        hint=f"consume it with inputs: {{{name}: {node.id}.{name}}}, "
                        "or remove it from outputs",
                    )
                )
    return problems


def check_disconnected(graph: LinkedGraph) -> list[Diagnostic]:
    """A task with no upstream and no downstream in a plan of several tasks is usually a mistake."""
    if len(graph.nodes) < 2:
        return []
    return [
        diagnostic(
            "P2F303",
            f"task '{node.id}' is not connected to any other task",
            node.origin.pointer,
            hint="add it to a depends_on, or give it one",
        )
        for node in graph.nodes.values()
        if not graph.upstream[node.id] and not graph.downstream[node.id]
    ]


def _ancestor_types(graph: LinkedGraph, task_id: str) -> set[str]:
    seen = {task_id}
    queue = deque(graph.upstream[task_id])
    types = set()
    while queue:
        current = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        types.add(graph.nodes[current].type)
        queue.extend(graph.upstream[current])
    return types


def check_deploys_verified(graph: LinkedGraph) -> list[Diagnostic]:
    """Every `deploy` depends, transitively, on a `validate` and a `test`, unless it opts out."""
    problems = []
    for node in graph.nodes.values():
        if node.type != "deploy" or node.allow_unverified:
            continue
        missing = [t for t in ("validate", "test") if t not in _ancestor_types(graph, node.id)]
        if missing:
            problems.append(
                diagnostic(
                    "P2F304",
                    f"deploy task '{node.id}' has no "
                    + " and no ".join(f"'{t}'" for t in missing)
                    + " task upstream",
                    node.origin.pointer,
                    hint="make it depend on the tasks that verify what it deploys, or set "
                    "params.allow_unverified: true",
                )
            )
    return problems


def check_branch_targets(graph: LinkedGraph) -> list[Diagnostic]:
    """An approval's `branch` chooses among the tasks that wait for it: any other task would run
    or not whatever the answer, so naming it is a mistake."""
    problems = []
    for node in graph.nodes.values():
        if node.type != "approval":
            continue
        downstream = graph.downstream[node.id]
        for option, targets in sorted(node.params.get("branch", {}).items()):
            for index, target in enumerate(targets):
                if target in downstream:
                    continue
                problems.append(
                    diagnostic(
                        "P2F211",
                        f"branch '{option}' of '{node.id}' names '{target}', which is not "
                        f"directly downstream of '{node.id}'",
                        f"{node.origin.pointer}/params/branch/{option}/{index}",
                        hint="downstream of it: " + ", ".join(downstream)
                        if downstream
                        else f"make the task depend on '{node.id}'",
                    )
                )
    return problems


GRAPH_RULES = (
    check_unconsumed_artifacts,
    check_disconnected,
    check_deploys_verified,
    check_branch_targets,
)
