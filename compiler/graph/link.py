"""Stage 4a: task nodes → a linked graph: ids checked, dependencies and inputs resolved to edges."""

from __future__ import annotations

import dataclasses

from ..decompose import Decomposition, TaskNode
from ..errors import Diagnostic, Related, diagnostic
from ..validate.suggest import Suggester, did_you_mean


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    """``upstream`` runs before ``downstream``; ``pointer`` is where the edge is first written."""

    upstream: str
    downstream: str
    artifacts: tuple[str, ...]
    pointer: str


@dataclasses.dataclass(frozen=True)
class LinkedGraph:
    nodes: dict[str, TaskNode]
    edges: dict[tuple[str, str], Edge]
    inputs: dict[str, dict[str, str]]
    """Task id → local input name → resolved ``task.artifact``."""
    upstream: dict[str, list[str]]
    downstream: dict[str, list[str]]


def _id_pointer(node: TaskNode) -> str:
    return f"{node.origin.pointer}/id" if node.origin.written else node.origin.pointer


def link(
    decomposition: Decomposition,
    unchecked_ids: frozenset[str] = frozenset(),
    unchecked_components: frozenset[str] = frozenset(),
) -> tuple[LinkedGraph, list[Diagnostic]]:
    """Resolve every reference; report duplicates, unknown and self references, missing artifacts.

    References to tasks that failed validation (``unchecked_*``) are not reported: their own error
    already is.
    """
    problems: list[Diagnostic] = []
    nodes: dict[str, TaskNode] = {}
    for node in decomposition.nodes:
        first = nodes.get(node.id)
        if first is not None:
            problems.append(
                diagnostic(
                    "P2F201",
                    f"duplicate task id '{node.id}'",
                    _id_pointer(node),
                    hint="task ids must be unique; rename one of them",
                    related=[Related(_id_pointer(first), f"'{node.id}' first defined here")],
                )
            )
            continue
        nodes[node.id] = node
    expansions = decomposition.expansions
    suggest = Suggester([*nodes, *expansions, *unchecked_ids])

    def unchecked(ref: str) -> bool:
        base = ref.split("[", 1)[0]
        return base in unchecked_ids or base.split(".", 1)[0] in unchecked_components

    edges: dict[tuple[str, str], Edge] = {}

    def add_edge(upstream: str, downstream: str, pointer: str, artifact: str | None) -> None:
        key = (upstream, downstream)
        edge = edges.get(key)
        if edge is None:
            edges[key] = Edge(upstream, downstream, (artifact,) if artifact else (), pointer)
        elif artifact and artifact not in edge.artifacts:
            edges[key] = dataclasses.replace(
                edge, artifacts=tuple(sorted((*edge.artifacts, artifact)))
            )

    inputs: dict[str, dict[str, str]] = {}
    for node in nodes.values():
        for dep in node.depends_on:
            targets = [dep.task] if dep.task in nodes else expansions.get(dep.task)
            if targets is None:
                if not unchecked(dep.task):
                    problems.append(
                        diagnostic(
                            "P2F202",
                            f"task '{node.id}' depends on unknown task '{dep.task}'",
                            dep.pointer,
                            hint=suggest(dep.task),
                        )
                    )
                continue
            for target in targets:
                if target == node.id or dep.task == node.id:
                    # Named by the written id: a matrix task's expansions give one diagnostic.
                    written = dep.task if target == node.id else node.id
                    problems.append(
                        diagnostic("P2F203", f"task '{written}' depends on itself", dep.pointer)
                    )
                    break
                add_edge(target, node.id, dep.pointer, None)
        resolved: dict[str, str] = {}
        for item in node.inputs:
            ref = f"{item.task}.{item.artifact}"
            if item.task in expansions:
                problems.append(
                    diagnostic(
                        "P2F205",
                        f"input '{item.name}' of '{node.id}' refers to matrix task '{item.task}', "
                        f"which has {len(expansions[item.task])} expansions",
                        item.pointer,
                        hint=f"name one expansion, such as "
                        f"'{expansions[item.task][0]}.{item.artifact}'",
                    )
                )
            elif item.task not in nodes:
                if not unchecked(item.task):
                    problems.append(
                        diagnostic(
                            "P2F202",
                            f"input '{item.name}' of '{node.id}' refers to unknown task "
                            f"'{item.task}'",
                            item.pointer,
                            hint=suggest(item.task),
                        )
                    )
            elif item.task == node.id:
                problems.append(
                    diagnostic(
                        "P2F203",
                        f"task '{node.id}' consumes its own artifact '{item.artifact}'",
                        item.pointer,
                    )
                )
            elif item.artifact not in nodes[item.task].outputs:
                producer = nodes[item.task]
                problems.append(
                    diagnostic(
                        "P2F204",
                        f"input '{item.name}' of '{node.id}' consumes '{ref}', but '{item.task}' "
                        f"does not produce '{item.artifact}'",
                        item.pointer,
                        hint=did_you_mean(item.artifact, producer.outputs)
                        or f"add '{item.artifact}' to the outputs of '{item.task}'",
                    )
                )
            else:
                resolved[item.name] = ref
                add_edge(item.task, node.id, item.pointer, item.artifact)
        inputs[node.id] = resolved

    upstream: dict[str, list[str]] = {task_id: [] for task_id in nodes}
    downstream: dict[str, list[str]] = {task_id: [] for task_id in nodes}
    for up, down in edges:
        upstream[down].append(up)
        downstream[up].append(down)
    for ids in (*upstream.values(), *downstream.values()):
        ids.sort()
    return LinkedGraph(nodes, edges, inputs, upstream, downstream), problems
