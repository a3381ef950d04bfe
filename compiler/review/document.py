"""Reading a TaskGraph file back: JSON text → the document, or a reason it is not a TaskGraph.

The review tools draw and compare documents, so the parts they read are checked here, once, and
reported in words: tasks with unique string ids and types, components, edges between known tasks.
The graph hash is not checked: a graph edited by hand can still be drawn (``plan2flow run`` is the
command that refuses one).
"""

from __future__ import annotations

import json
from typing import Any


class NotATaskGraph(ValueError):
    """The text is not a TaskGraph document; the message says why."""


def parse_taskgraph(data: str | bytes) -> dict[str, Any]:
    """The TaskGraph document in ``data``, or :class:`NotATaskGraph`.

    >>> parse_taskgraph('{"kind": "TaskGraph", "tasks": [], "edges": []}')["kind"]
    'TaskGraph'
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = json.loads(text)
    except UnicodeDecodeError:
        raise NotATaskGraph("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise NotATaskGraph(f"invalid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("kind") != "TaskGraph":
        raise NotATaskGraph("kind is not 'TaskGraph'")
    ids = _check_tasks(document.get("tasks"))
    _check_edges(document.get("edges"), ids)
    return document


def _check_tasks(tasks: Any) -> set[str]:
    if not isinstance(tasks, list):
        raise NotATaskGraph("'tasks' is not a list")
    ids: set[str] = set()
    for position, task in enumerate(tasks):
        where = f"tasks[{position}]"
        if not isinstance(task, dict):
            raise NotATaskGraph(f"{where} is not an object")
        for field in ("id", "type"):
            if not isinstance(task.get(field), str):
                raise NotATaskGraph(f"{where}.{field} is not a string")
        if not isinstance(task.get("component"), str | None):
            raise NotATaskGraph(f"{where}.component is neither a string nor null")
        if task["id"] in ids:
            raise NotATaskGraph(f"{where}.id repeats the id {task['id']!r}")
        ids.add(task["id"])
    return ids


def _check_edges(edges: Any, ids: set[str]) -> None:
    if not isinstance(edges, list):
        raise NotATaskGraph("'edges' is not a list")
    for position, edge in enumerate(edges):
        where = f"edges[{position}]"
        if not isinstance(edge, dict):
            raise NotATaskGraph(f"{where} is not an object")
        for field in ("from", "to"):
            end = edge.get(field)
            if not isinstance(end, str) or end not in ids:
                raise NotATaskGraph(f"{where}.{field} names no task of the graph")
        artifacts = edge.get("artifacts", [])
        if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
            raise NotATaskGraph(f"{where}.artifacts is not a list of names")
