"""Dependency cycles, reported as full paths with where every edge of them is written."""

from __future__ import annotations

from collections import deque

from ..errors import Diagnostic, Related, diagnostic
from ..graph.link import LinkedGraph


def _shortest_cycle(start: str, members: set[str], graph: LinkedGraph) -> list[str]:
    """The shortest path start → … → start inside one strongly connected component (BFS)."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for nxt in graph.downstream[current]:
            if nxt not in members:
                continue
            if nxt == start:
                path = [current]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if nxt not in parents:
                parents[nxt] = current
                queue.append(nxt)
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


def check_cycles(graph: LinkedGraph, remaining: set[str]) -> list[Diagnostic]:
    """One diagnostic per strongly connected component among the tasks a sort could not order."""
    import networkx as nx  # only plans with cycles pay for the import

    sub: nx.DiGraph[str] = nx.DiGraph()
    sub.add_nodes_from(sorted(remaining))
    sub.add_edges_from(sorted(k for k in graph.edges if k[0] in remaining and k[1] in remaining))
    problems = []
    components = [set(c) for c in nx.strongly_connected_components(sub) if len(c) > 1]
    for members in sorted(components, key=min):
        path = _shortest_cycle(min(members), members, graph)
        # path runs upstream → downstream; users read dependencies: "b depends on a".
        deps = list(reversed(path))
        related = [
            Related(
                graph.edges[(deps[i + 1], deps[i])].pointer,
                f"'{deps[i]}' depends on '{deps[i + 1]}'",
            )
            for i in range(len(deps) - 1)
        ]
        problems.append(
            diagnostic(
                "P2F301",
                "dependency cycle: " + " → ".join(deps),
                related[0].pointer,
                hint="'→' reads 'depends on'; remove one of these dependencies",
                related=related,
            )
        )
    return problems
