"""Stage 4b: the canonical topological order: Kahn's algorithm, ready tasks taken by smallest id."""

from __future__ import annotations

import heapq

from .link import LinkedGraph


def topological_order(graph: LinkedGraph) -> tuple[list[str], set[str]]:
    """The lexicographically smallest topological order, and the tasks left over by cycles.

    >>> from plan2flow.compiler.graph.link import LinkedGraph
    >>> g = LinkedGraph({}, {}, {}, {"b": [], "a": [], "c": ["a"]}, {"a": ["c"], "b": [], "c": []})
    >>> topological_order(g)
    (['a', 'b', 'c'], set())
    """
    waiting = {task_id: len(ups) for task_id, ups in graph.upstream.items()}
    ready = [task_id for task_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        task_id = heapq.heappop(ready)
        order.append(task_id)
        for down in graph.downstream[task_id]:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, down)
    return order, set(graph.upstream) - set(order)
