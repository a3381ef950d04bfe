"""The semantic diff of two TaskGraph documents: what a plan change does to the graph.

A line diff of two ``.taskgraph.json`` files shows every task whose hash moved; this diff says
*why*. It compares tasks by id, field by field, and uses the per-task Merkle hashes for the rest:

- **added**, **removed**: ids on one side only (after renames are recognised);
- **renamed**: a removed and an added task that are identical except for ``id``, ``hash`` and
  ``origin``, once references to other renamed tasks are followed (``depends_on``, and the
  producer in ``inputs``). Only one-to-one matches count; if several tasks look alike, they stay
  added and removed rather than being paired by guess;
- **changed**: same id (or renamed), different fields, with one :class:`Change` per differing
  path (``params.argv``, ``retries``); objects are compared key by key, lists as whole values;
- **impacted**: same fields but a different hash, which by the hash's construction means
  something upstream was added, changed or renamed. A task with an identical hash is unchanged,
  wherever its YAML moved.

``hash`` and ``origin`` are never compared as fields: the task hash does not cover ``origin``
(where in the plan a task came from), so neither does the diff. Values are compared as canonical
JSON, so ``1``, ``1.0`` and ``true`` differ as they do in the file.

Everything is ordered by id (Unicode code points): tasks, renames by their old id, edges by
``from`` then ``to``, artifacts by id; changes inside a task or object follow its keys sorted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..graph.canonical import compact_json
from .draw import Mark

TOP_LEVEL_LISTS: Final = frozenset({"tasks", "edges", "artifacts", "hash"})
"""Top-level fields with their own sections (or, for ``hash``, shown beside the source)."""

_NOT_COMPARED: Final = frozenset({"hash", "origin"})
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class _Absent:
    """The value on a side where a path does not exist (not JSON ``null``); one instance."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


@dataclasses.dataclass(frozen=True)
class Change:
    """One path whose value differs; ``old`` or ``new`` is :data:`ABSENT` where it is missing."""

    path: str
    old: Any
    new: Any


@dataclasses.dataclass(frozen=True)
class TaskChange:
    """A task (or artifact) present on both sides whose fields differ."""

    id: str
    changes: tuple[Change, ...]


@dataclasses.dataclass(frozen=True)
class Rename:
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    artifacts: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class EdgeChange:
    """An edge on both sides that carries different artifacts."""

    source: str
    target: str
    old: tuple[str, ...]
    new: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class GraphDiff:
    """Everything that differs between a base and a head TaskGraph document."""

    base_hash: str | None
    head_hash: str | None
    base_name: str | None
    head_name: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[TaskChange, ...] = ()
    renamed: tuple[Rename, ...] = ()
    impacted: tuple[str, ...] = ()
    edges_added: tuple[Edge, ...] = ()
    edges_removed: tuple[Edge, ...] = ()
    edges_changed: tuple[EdgeChange, ...] = ()
    artifacts_added: tuple[str, ...] = ()
    artifacts_removed: tuple[str, ...] = ()
    artifacts_changed: tuple[TaskChange, ...] = ()
    top_level: tuple[Change, ...] = ()
    merged: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    """Head's tasks, edges and artifacts plus the removed tasks with theirs: what to draw."""

    @property
    def same(self) -> bool:
        return not any(
            (
                self.added,
                self.removed,
                self.changed,
                self.renamed,
                self.impacted,
                self.edges_added,
                self.edges_removed,
                self.edges_changed,
                self.artifacts_added,
                self.artifacts_removed,
                self.artifacts_changed,
                self.top_level,
            )
        )

    def marks(self) -> dict[str, Mark]:
        """Task id (in :attr:`merged`) → how it differs; renamed tasks count as changed."""
        found: dict[str, Mark] = {}
        for task_id in self.added:
            found[task_id] = "added"
        for task_id in self.removed:
            found[task_id] = "removed"
        for change in self.changed:
            found[change.id] = "changed"
        for rename in self.renamed:
            found[rename.new] = "changed"
        for task_id in self.impacted:
            found[task_id] = "impacted"
        return dict(sorted(found.items()))


def empty_graph() -> dict[str, Any]:
    """The side of a plan that does not exist (added or deleted in a change): no tasks at all.

    >>> diff_graphs(empty_graph(), empty_graph()).same
    True
    """
    return {
        "apiVersion": "plan2flow/v1",
        "artifacts": [],
        "edges": [],
        "hash": None,
        "kind": "TaskGraph",
        "params": {},
        "plan": {},
        "schedule": None,
        "settings": {},
        "tasks": [],
    }


def field_path(parts: Iterable[str]) -> str:
    """A dotted path; keys that are not plain names are written as JSON strings in brackets.

    >>> field_path(["params", "argv"])
    'params.argv'
    >>> field_path(["params", "env", "A.B"])
    'params.env["A.B"]'
    """
    text = ""
    for part in parts:
        if _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{compact_json(part)}]"
    return text


def compare_values(old: Any, new: Any, parts: tuple[str, ...] = ()) -> list[Change]:
    """Changes from ``old`` to ``new``: objects key by key, everything else as a whole value.

    >>> compare_values({"a": 1, "b": {"c": [1]}}, {"a": 1.0, "b": {"c": [1], "d": None}})
    [Change(path='a', old=1, new=1.0), Change(path='b.d', old=ABSENT, new=None)]
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[Change] = []
        for key in sorted(set(old) | set(new)):
            changes += compare_values(old.get(key, ABSENT), new.get(key, ABSENT), (*parts, key))
        return changes
    if old is not ABSENT and new is not ABSENT and compact_json(old) == compact_json(new):
        return []
    return [Change(field_path(parts), old, new)]


def _translate_task(task: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """A base task as it reads once renamed tasks carry their new ids."""
    translated = dict(task)
    translated["id"] = renames.get(task["id"], task["id"])
    if "depends_on" in task:
        translated["depends_on"] = sorted(renames.get(d, d) for d in task["depends_on"])
    if isinstance(task.get("inputs"), Mapping):
        translated["inputs"] = {
            name: _translate_artifact_id(ref, renames) for name, ref in task["inputs"].items()
        }
    return translated


def _translate_artifact_id(ref: Any, renames: Mapping[str, str]) -> Any:
    """``producer.name`` with the producer renamed; a task id may itself contain dots."""
    if not isinstance(ref, str):
        return ref
    producer, dot, name = ref.rpartition(".")
    return f"{renames[producer]}{dot}{name}" if dot and producer in renames else ref


def _signature(task: Mapping[str, Any]) -> str:
    """What must be equal for two tasks to be one task under two names."""
    return compact_json({k: v for k, v in task.items() if k not in {"id", *_NOT_COMPARED}})


def find_renames(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, str]:
    """Old id → new id, for tasks only on one side that match one to one.

    Repeated until nothing new matches, because a task renamed below a renamed task only looks
    the same once its upstream's new name is known.
    """
    base_tasks = {t["id"]: t for t in base["tasks"]}
    head_tasks = {t["id"]: t for t in head["tasks"]}
    removed = sorted(set(base_tasks) - set(head_tasks))
    added = sorted(set(head_tasks) - set(base_tasks))
    renames: dict[str, str] = {}
    while True:
        old_by_signature = _unique_signatures(
            (_signature(_translate_task(base_tasks[i], renames)), i)
            for i in removed
            if i not in renames
        )
        matched = set(renames.values())
        new_by_signature = _unique_signatures(
            (_signature(head_tasks[i]), i) for i in added if i not in matched
        )
        found = {
            old: new_by_signature[signature]
            for signature, old in old_by_signature.items()
            if signature in new_by_signature
        }
        if not found:
            return dict(sorted(renames.items()))
        renames.update(found)


def _unique_signatures(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, list[str]] = {}
    for signature, task_id in pairs:
        seen.setdefault(signature, []).append(task_id)
    return {signature: ids[0] for signature, ids in seen.items() if len(ids) == 1}


def _edges(document: Mapping[str, Any], renames: Mapping[str, str]) -> dict[tuple[str, str], Edge]:
    found = {}
    for edge in document["edges"]:
        source = renames.get(edge["from"], edge["from"])
        target = renames.get(edge["to"], edge["to"])
        found[source, target] = Edge(source, target, tuple(edge["artifacts"]))
    return found


def _artifacts(
    document: Mapping[str, Any], renames: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    found = {}
    for artifact in document["artifacts"]:
        translated = dict(artifact)
        translated["id"] = _translate_artifact_id(artifact["id"], renames)
        translated["producer"] = renames.get(artifact["producer"], artifact["producer"])
        translated["consumers"] = sorted(renames.get(c, c) for c in artifact["consumers"])
        found[translated["id"]] = translated
    return found


def _merged(
    base: Mapping[str, Any], head: Mapping[str, Any], renames: Mapping[str, str], removed: set[str]
) -> dict[str, Any]:
    base_tasks = [_translate_task(t, renames) for t in base["tasks"] if t["id"] in removed]
    base_edges = _edges(base, renames)
    gone_edges = [
        {"artifacts": list(edge.artifacts), "from": edge.source, "to": edge.target}
        for _, edge in sorted(base_edges.items())
        if edge.source in removed or edge.target in removed
    ]
    gone_artifacts = [a for a in _artifacts(base, renames).values() if a["producer"] in removed]
    merged = dict(head)
    merged["tasks"] = [*head["tasks"], *base_tasks]
    merged["edges"] = sorted(
        [*head["edges"], *gone_edges], key=lambda edge: (edge["from"], edge["to"])
    )
    merged["artifacts"] = sorted(
        [*head["artifacts"], *gone_artifacts], key=lambda artifact: str(artifact["id"])
    )
    return merged


def diff_graphs(base: Mapping[str, Any], head: Mapping[str, Any]) -> GraphDiff:
    """Compare two TaskGraph documents (parsed JSON); see the module docstring for the rules."""
    renames = find_renames(base, head)
    base_tasks = {renames.get(t["id"], t["id"]): _translate_task(t, renames) for t in base["tasks"]}
    head_tasks = {t["id"]: t for t in head["tasks"]}
    renamed_to = set(renames.values())
    changed, impacted = [], []
    for task_id in sorted(set(base_tasks) & set(head_tasks)):
        old, new = base_tasks[task_id], head_tasks[task_id]
        changes = compare_values(_compared(old), _compared(new))
        if changes:
            changed.append(TaskChange(task_id, tuple(changes)))
        elif task_id not in renamed_to and old.get("hash") != new.get("hash"):
            impacted.append(task_id)
    removed = set(base_tasks) - set(head_tasks)

    base_edges, head_edges = _edges(base, renames), _edges(head, {})
    base_artifacts, head_artifacts = _artifacts(base, renames), _artifacts(head, {})
    artifacts_changed = []
    for artifact_id in sorted(set(base_artifacts) & set(head_artifacts)):
        changes = compare_values(base_artifacts[artifact_id], head_artifacts[artifact_id])
        if changes:
            artifacts_changed.append(TaskChange(artifact_id, tuple(changes)))

    return GraphDiff(
        base_hash=base.get("hash"),
        head_hash=head.get("hash"),
        base_name=_plan_name(base),
        head_name=_plan_name(head),
        added=tuple(sorted(set(head_tasks) - set(base_tasks))),
        removed=tuple(sorted(removed)),
        changed=tuple(changed),
        renamed=tuple(Rename(old, new) for old, new in renames.items()),
        impacted=tuple(impacted),
        edges_added=tuple(head_edges[k] for k in sorted(set(head_edges) - set(base_edges))),
        edges_removed=tuple(base_edges[k] for k in sorted(set(base_edges) - set(head_edges))),
        edges_changed=tuple(
            EdgeChange(k[0], k[1], base_edges[k].artifacts, head_edges[k].artifacts)
            for k in sorted(set(base_edges) & set(head_edges))
            if base_edges[k].artifacts != head_edges[k].artifacts
        ),
        artifacts_added=tuple(sorted(set(head_artifacts) - set(base_artifacts))),
        artifacts_removed=tuple(sorted(set(base_artifacts) - set(head_artifacts))),
        artifacts_changed=tuple(artifacts_changed),
        top_level=tuple(
            compare_values(
                {k: v for k, v in base.items() if k not in TOP_LEVEL_LISTS},
                {k: v for k, v in head.items() if k not in TOP_LEVEL_LISTS},
            )
        ),
        merged=_merged(base, head, renames, removed),
    )


def _compared(task: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in _NOT_COMPARED}


def _plan_name(document: Mapping[str, Any]) -> str | None:
    plan = document.get("plan")
    name = plan.get("name") if isinstance(plan, Mapping) else None
    return name if isinstance(name, str) else None
