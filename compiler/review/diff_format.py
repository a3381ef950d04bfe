"""A :class:`~.diff.GraphDiff` as text for a terminal, Markdown for a pull request, or JSON.

Each side is shown by its label (what was given on the command line) and its graph hash,
shortened to 12 hex digits in text and Markdown. Values are written as compact canonical JSON;
a path that exists on one side only shows ``(absent)`` on the other (JSON omits the key).
The output depends only on its arguments, so it can be pinned in golden files.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ..graph.canonical import compact_json
from .diff import ABSENT, Change, Edge, GraphDiff, TaskChange
from .draw import mermaid

SHORT_HASH: Final = len("sha256:") + 12

_COLORS: Final = {"+": "32", "-": "31", "~": "33", ">": "36", "*": "34", "#": "1"}
"""ANSI colour of a text line by its marker: added green, removed red, changed yellow, renamed
cyan, impacted blue, headers bold."""


def short_hash(value: str | None) -> str:
    """A graph hash cut to 12 hex digits, enough to tell graphs apart in a header.

    >>> short_hash("sha256:924cc5a5059144ff57b390df096369ba9b08bfea35d55c9e1d44456a99de6100")
    'sha256:924cc5a50591'
    >>> short_hash(None)
    '(missing)'
    """
    return value[:SHORT_HASH] if value else "(missing)"


def show_value(value: Any) -> str:
    """A value as compact JSON, or ``(absent)``."""
    return "(absent)" if value is ABSENT else compact_json(value)


def summary(diff: GraphDiff) -> str:
    """One line of counts, leaving out what did not change.

    >>> summary(GraphDiff("sha256:a", "sha256:a", "x", "x"))
    'no changes'
    """
    groups = [
        (
            "tasks",
            [
                (len(diff.added), "added"),
                (len(diff.removed), "removed"),
                (len(diff.changed), "changed"),
                (len(diff.renamed), "renamed"),
                (len(diff.impacted), "impacted"),
            ],
        ),
        (
            "edges",
            [
                (len(diff.edges_added), "added"),
                (len(diff.edges_removed), "removed"),
                (len(diff.edges_changed), "changed"),
            ],
        ),
        (
            "artifacts",
            [
                (len(diff.artifacts_added), "added"),
                (len(diff.artifacts_removed), "removed"),
                (len(diff.artifacts_changed), "changed"),
            ],
        ),
        ("plan", [(len(diff.top_level), "changed")]),
    ]
    parts = []
    for name, counts in groups:
        shown = ", ".join(f"{count} {what}" for count, what in counts if count)
        if shown:
            parts.append(f"{name}: {shown}")
    return "; ".join(parts) or "no changes"


# ---------------------------------------------------------------------------------------- text


def format_text(diff: GraphDiff, base_label: str, head_label: str, *, color: bool = False) -> str:
    """The diff for a terminal: the two sides, a summary line, then one section per kind, each
    entry marked ``+`` added, ``-`` removed, ``~`` changed (its fields below it), ``>`` renamed,
    ``*`` impacted."""
    lines = [
        ("#", f"--- {base_label}  {_name(diff.base_name)}  {short_hash(diff.base_hash)}"),
        ("#", f"+++ {head_label}  {_name(diff.head_name)}  {short_hash(diff.head_hash)}"),
        ("#", summary(diff)),
    ]
    if diff.top_level:
        lines += [("", ""), ("#", "plan")]
        lines += [
            ("~", f"~ {c.path}: {show_value(c.old)} → {show_value(c.new)}") for c in diff.top_level
        ]
    if diff.added or diff.removed or diff.changed or diff.renamed or diff.impacted:
        lines += [("", ""), ("#", "tasks")]
        lines += [("+", f"+ {task}") for task in diff.added]
        lines += [("-", f"- {task}") for task in diff.removed]
        for change in diff.changed:
            lines += [("~", f"~ {change.id}"), *_field_lines(change.changes)]
        lines += [(">", f"> {r.old} → {r.new}  (renamed)") for r in diff.renamed]
        lines += [("*", f"* {task}  (impacted: upstream changed)") for task in diff.impacted]
    if diff.edges_added or diff.edges_removed or diff.edges_changed:
        lines += [("", ""), ("#", "edges")]
        lines += [("+", f"+ {_edge_text(edge)}") for edge in diff.edges_added]
        lines += [("-", f"- {_edge_text(edge)}") for edge in diff.edges_removed]
        lines += [
            ("~", f"~ {e.source} → {e.target}  artifacts: {_names(e.old)} → {_names(e.new)}")
            for e in diff.edges_changed
        ]
    if diff.artifacts_added or diff.artifacts_removed or diff.artifacts_changed:
        lines += [("", ""), ("#", "artifacts")]
        lines += [("+", f"+ {artifact}") for artifact in diff.artifacts_added]
        lines += [("-", f"- {artifact}") for artifact in diff.artifacts_removed]
        for change in diff.artifacts_changed:
            lines += [("~", f"~ {change.id}"), *_field_lines(change.changes)]
    return "".join(_paint(style, text, color) + "\n" for style, text in lines)


def _field_lines(changes: Iterable[Change]) -> list[tuple[str, str]]:
    return [("", f"    {c.path}: {show_value(c.old)} → {show_value(c.new)}") for c in changes]


def _edge_text(edge: Edge) -> str:
    carried = f"  [{', '.join(edge.artifacts)}]" if edge.artifacts else ""
    return f"{edge.source} → {edge.target}{carried}"


def _names(names: Sequence[str]) -> str:
    return f"[{', '.join(names)}]"


def _name(name: str | None) -> str:
    return name if name is not None else "-"


def _paint(style: str, text: str, color: bool) -> str:
    if not color or style not in _COLORS:
        return text
    return f"\x1b[{_COLORS[style]}m{text}\x1b[0m"


# ------------------------------------------------------------------------------------ markdown


def format_markdown(
    diff: GraphDiff, base_label: str, head_label: str, *, picture: bool = True
) -> str:
    """The diff as a pull-request comment: heading, counts, per-task details, a marked picture
    (Mermaid, which GitHub draws; `picture=False` leaves it for a caller that draws its own)."""
    lines = [f"### plan2flow diff: {_title(diff)}", ""]
    if diff.same:
        same = diff.base_hash == diff.head_hash
        graph = (
            f"the same graph {_code(short_hash(diff.head_hash))}"
            if same
            else "graphs that differ only where the diff does not look (task origins): "
            f"{_code(short_hash(diff.base_hash))} and {_code(short_hash(diff.head_hash))}"
        )
        lines.append(
            f"No changes: {_code(base_label, table=False)} and {_code(head_label, table=False)} "
            f"compile to {graph}."
        )
        return "\n".join(lines) + "\n"
    lines += _sides_table(diff, base_label, head_label)
    lines += ["", *_counts_table(diff)]
    tasks = {task["id"]: task for task in diff.merged.get("tasks", [])}
    if diff.top_level:
        lines += ["", "#### Plan", "", "| Field | Base | Head |", "|---|---|---|"]
        lines += [_change_row(change) for change in diff.top_level]
    if diff.added or diff.removed or diff.changed or diff.renamed or diff.impacted:
        lines += ["", "#### Tasks", "", *_task_table(diff, tasks)]
        for change in diff.changed:
            lines += ["", *_task_details(change)]
    if diff.edges_added or diff.edges_removed or diff.edges_changed:
        lines += ["", "#### Edges", "", "| Edge | Change | Artifacts |", "|---|---|---|"]
        lines += [_edge_row(edge, "added") for edge in diff.edges_added]
        lines += [_edge_row(edge, "removed") for edge in diff.edges_removed]
        lines += [
            f"| {_code(e.source)} → {_code(e.target)} | changed | "
            f"{_code(_names(e.old))} → {_code(_names(e.new))} |"
            for e in diff.edges_changed
        ]
    if diff.artifacts_added or diff.artifacts_removed or diff.artifacts_changed:
        lines += ["", "#### Artifacts", "", "| Artifact | Change | Details |", "|---|---|---|"]
        lines += [f"| {_code(a)} | added | |" for a in diff.artifacts_added]
        lines += [f"| {_code(a)} | removed | |" for a in diff.artifacts_removed]
        lines += [
            f"| {_code(c.id)} | changed | {'<br>'.join(_inline_change(x) for x in c.changes)} |"
            for c in diff.artifacts_changed
        ]
    if picture:
        drawn = mermaid(diff.merged, diff.marks())
        fence = _fence(drawn)
        lines += ["", "#### Graph", "", f"{fence}mermaid", drawn.rstrip("\n"), fence]
    return "\n".join(lines) + "\n"


def _title(diff: GraphDiff) -> str:
    base, head = diff.base_name, diff.head_name
    if base is not None and head is not None and base != head:
        return f"{_code(base)} → {_code(head)}"
    name = head if head is not None else base
    return _code(name) if name is not None else "(no plan)"


def _sides_table(diff: GraphDiff, base_label: str, head_label: str) -> list[str]:
    base_hash, head_hash = _code(short_hash(diff.base_hash)), _code(short_hash(diff.head_hash))
    return [
        "| | Base | Head |",
        "|---|---|---|",
        f"| Source | {_code(base_label)} | {_code(head_label)} |",
        f"| Graph hash | {base_hash} | {head_hash} |",
    ]


def _counts_table(diff: GraphDiff) -> list[str]:
    def row(name: str, *counts: int | None) -> str:
        cells = " | ".join("" if count is None else str(count) for count in counts)
        return f"| {name} | {cells} |"

    return [
        "| | Added | Removed | Changed | Renamed | Impacted |",
        "|---|---:|---:|---:|---:|---:|",
        row(
            "Tasks",
            len(diff.added),
            len(diff.removed),
            len(diff.changed),
            len(diff.renamed),
            len(diff.impacted),
        ),
        row(
            "Edges",
            len(diff.edges_added),
            len(diff.edges_removed),
            len(diff.edges_changed),
            None,
            None,
        ),
        row(
            "Artifacts",
            len(diff.artifacts_added),
            len(diff.artifacts_removed),
            len(diff.artifacts_changed),
            None,
            None,
        ),
        row("Plan fields", None, None, len(diff.top_level), None, None),
    ]


def _task_table(diff: GraphDiff, tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    def row(shown: str, what: str, task_id: str) -> str:
        task = tasks[task_id]
        upstream = ", ".join(_code(d) for d in task.get("depends_on", ()))
        return f"| {shown} | {what} | {_code(str(task.get('type')))} | {upstream} |"

    return [
        "| Task | Change | Type | Depends on |",
        "|---|---|---|---|",
        *(row(_code(t), "added", t) for t in diff.added),
        *(row(_code(t), "removed", t) for t in diff.removed),
        *(row(_code(c.id), f"changed ({_fields(len(c.changes))})", c.id) for c in diff.changed),
        *(row(f"{_code(r.old)} → {_code(r.new)}", "renamed", r.new) for r in diff.renamed),
        *(row(_code(t), "impacted (upstream changed)", t) for t in diff.impacted),
    ]


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


def _task_details(change: TaskChange) -> list[str]:
    return [
        "<details>",
        f"<summary><code>{html.escape(change.id)}</code>: "
        f"{_fields(len(change.changes))} changed</summary>",
        "",
        "| Field | Base | Head |",
        "|---|---|---|",
        *(_change_row(c) for c in change.changes),
        "",
        "</details>",
    ]


def _change_row(change: Change) -> str:
    return f"| {_code(change.path)} | {_value_cell(change.old)} | {_value_cell(change.new)} |"


def _inline_change(change: Change) -> str:
    return f"{_code(change.path)}: {_value_cell(change.old)} → {_value_cell(change.new)}"


def _value_cell(value: Any) -> str:
    return "*(absent)*" if value is ABSENT else _code(compact_json(value))


def _edge_row(edge: Edge, what: str) -> str:
    carried = ", ".join(_code(name) for name in edge.artifacts)
    return f"| {_code(edge.source)} → {_code(edge.target)} | {what} | {carried} |"


def _code(text: str, *, table: bool = True) -> str:
    """Text as Markdown code that survives a table cell: a backtick fence longer than any run of
    backticks inside, ``|`` escaped (GitHub unescapes it inside code in tables), each line its own
    span joined by ``<br>``.

    >>> _code("a|b")
    '`a\\\\|b`'
    >>> _code("x `y`")
    '`` x `y` ``'
    >>> _code("one\\ntwo")
    '`one`<br>`two`'
    """
    spans = []
    for line in text.split("\n"):
        if not line:
            continue
        if table:
            line = line.replace("|", "\\|")
        longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
        fence = "`" * (longest + 1)
        padded = f" {line} " if line.startswith("`") or line.endswith("`") else line
        spans.append(f"{fence}{padded}{fence}")
    return "<br>".join(spans)


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


# ---------------------------------------------------------------------------------------- json


def format_json(diff: GraphDiff, base_label: str, head_label: str) -> str:
    """The diff as one JSON document: sorted keys, two-space indent, lists in the diff's order.

    Shape (documented in ``docs/cli.md``)::

        {"artifacts": {"added": [id], "changed": [{"id", "changes"}], "removed": [id]},
         "base": {"hash", "name", "source"}, "head": {...},
         "edges": {"added": [{"from", "to", "artifacts"}], "changed": [{"from", "to", "old",
                   "new"}], "removed": [...]},
         "impacted": [id], "plan": [change], "same": bool,
         "tasks": {"added": [id], "changed": [{"id", "changes": [change]}], "removed": [id],
                   "renamed": [{"old", "new"}]}}

    where a change is ``{"path", "old", "new"}`` without ``old`` (``new``) when the path is absent
    on that side.
    """
    document = {
        "artifacts": {
            "added": list(diff.artifacts_added),
            "changed": [_task_change(c) for c in diff.artifacts_changed],
            "removed": list(diff.artifacts_removed),
        },
        "base": {"hash": diff.base_hash, "name": diff.base_name, "source": base_label},
        "edges": {
            "added": [_edge_json(e) for e in diff.edges_added],
            "changed": [
                {"from": e.source, "to": e.target, "old": list(e.old), "new": list(e.new)}
                for e in diff.edges_changed
            ],
            "removed": [_edge_json(e) for e in diff.edges_removed],
        },
        "head": {"hash": diff.head_hash, "name": diff.head_name, "source": head_label},
        "impacted": list(diff.impacted),
        "plan": [_change_json(c) for c in diff.top_level],
        "same": diff.same,
        "tasks": {
            "added": list(diff.added),
            "changed": [_task_change(c) for c in diff.changed],
            "removed": list(diff.removed),
            "renamed": [{"old": r.old, "new": r.new} for r in diff.renamed],
        },
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _change_json(change: Change) -> dict[str, Any]:
    found: dict[str, Any] = {"path": change.path}
    if change.old is not ABSENT:
        found["old"] = change.old
    if change.new is not ABSENT:
        found["new"] = change.new
    return found


def _task_change(change: TaskChange) -> dict[str, Any]:
    return {"id": change.id, "changes": [_change_json(c) for c in change.changes]}


def _edge_json(edge: Edge) -> dict[str, Any]:
    return {"from": edge.source, "to": edge.target, "artifacts": list(edge.artifacts)}
