"""Pictures of a TaskGraph: Mermaid (GitHub renders it in Markdown) and Graphviz DOT.

Tasks are grouped by component (a Mermaid ``subgraph``, a DOT ``cluster_``); the task type sets
the shape (see ``SHAPES``); an edge that carries artifacts is labelled with their names. Colours
are kept for ``marks`` (added, removed, changed, impacted), so a review picture and a plain one
share the same shapes; the legend of marks is drawn only when marks are given.

Node ids are safe identifiers made from the task ids (``stock.test[python=3.11]`` →
``t_stock_test_python_3_11``); where two ids would give the same identifier, the later one in
document order gets ``_2``, ``_3``, ... . Labels are escaped for each format, so a task id may hold
any character a plan allows. The text depends only on the document: components are sorted, tasks
keep the document's (topological) order, edges are sorted by ``from``, then ``to``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

from ..codegen.naming import unique_identifiers

Mark = Literal["added", "removed", "changed", "impacted"]

MARKS: tuple[Mark, ...] = ("added", "removed", "changed", "impacted")
"""Every mark, in the order the legend lists them."""


class Shape(NamedTuple):
    """How a task type is drawn: Mermaid's bracket pair and DOT's node attributes."""

    mermaid_open: str
    mermaid_close: str
    dot_shape: str
    dot_style: tuple[str, ...] = ()
    dot_peripheries: int = 1


SHAPES: Mapping[str, Shape] = {
    "approval": Shape("{", "}", "diamond"),
    "assemble": Shape("[/", "\\]", "trapezium"),
    "deploy": Shape(">", "]", "cds"),
    "generate_code": Shape("[/", "/]", "parallelogram"),
    "noop": Shape("([", "])", "ellipse"),
    "package": Shape("[(", ")]", "cylinder"),
    "python": Shape("(", ")", "box", ("rounded",)),
    "shell": Shape("[", "]", "box"),
    "test": Shape("[[", "]]", "box", dot_peripheries=2),
    "validate": Shape("{{", "}}", "hexagon"),
}
"""Task type → shape; a type not listed here is drawn as a plain rectangle, like ``shell``."""

_PLAIN = SHAPES["shell"]


class MarkStyle(NamedTuple):
    """How a marked task is drawn: GitHub's diff colours, and a line style for the marks that
    must read without colour too (removed dashed, impacted dotted)."""

    fill: str
    stroke: str
    dashes: str | None
    """Mermaid's ``stroke-dasharray``; ``None`` for a solid line."""
    dot_line: str | None
    """DOT's line style (``dashed``, ``dotted``); ``None`` for a solid line."""


MARK_STYLES: Mapping[Mark, MarkStyle] = {
    "added": MarkStyle("#e6ffec", "#1a7f37", None, None),
    "removed": MarkStyle("#ffebe9", "#cf222e", "5 5", "dashed"),
    "changed": MarkStyle("#fff8c5", "#9a6700", None, None),
    "impacted": MarkStyle("#ddf4ff", "#0969da", "2 2", "dotted"),
}


class _Task(NamedTuple):
    id: str
    node: str
    shape: Shape
    mark: Mark | None


class _Edge(NamedTuple):
    source: str
    target: str
    label: str
    dashed: bool


class _Layout(NamedTuple):
    """What both formats draw, in drawing order."""

    clusters: list[tuple[str, str, list[_Task]]]
    """(safe id, component name, its tasks)."""
    loose: list[_Task]
    edges: list[_Edge]
    marks_used: list[Mark]


def mermaid(document: Mapping[str, Any], marks: Mapping[str, Mark] | None = None) -> str:
    """The graph as a Mermaid flowchart (text ending in a newline).

    ``marks`` maps task ids to how they changed; every marked id must be a task of ``document``
    (to show removed tasks, draw a document that still has them). Edges touching a removed task
    are dashed.

    >>> doc = {"tasks": [{"id": "a", "type": "noop", "component": None}], "edges": []}
    >>> print(mermaid(doc), end="")
    flowchart LR
      t_a(["a"])
    """
    layout = _layout(document, marks or {})
    lines = ["flowchart LR"]
    for node, name, tasks in layout.clusters:
        lines.append(f'  subgraph {node} ["{_mermaid_text(name)}"]')
        lines.extend(f"    {_mermaid_node(task)}" for task in tasks)
        lines.append("  end")
    lines.extend(f"  {_mermaid_node(task)}" for task in layout.loose)
    for edge in layout.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {edge.source} {arrow}{label} {edge.target}")
    if layout.marks_used:
        lines.append('  subgraph legend ["legend"]')
        lines.extend(f'    legend_{mark}["{mark}"]' for mark in layout.marks_used)
        lines.append("  end")
        for mark in layout.marks_used:
            style = MARK_STYLES[mark]
            dashes = f",stroke-dasharray:{style.dashes}" if style.dashes else ""
            colours = f"fill:{style.fill},stroke:{style.stroke},stroke-width:2px"
            lines.append(f"  classDef {mark} {colours}{dashes}")
        marked = _marked_nodes(layout)
        for mark in layout.marks_used:
            lines.append(f"  class {','.join([*marked[mark], f'legend_{mark}'])} {mark}")
    return "\n".join(lines) + "\n"


def dot(document: Mapping[str, Any], marks: Mapping[str, Mark] | None = None) -> str:
    """The graph as a Graphviz DOT digraph (text ending in a newline); ``marks`` as for
    :func:`mermaid`.

    >>> doc = {"tasks": [{"id": "a", "type": "noop", "component": None}], "edges": []}
    >>> print(dot(doc), end="")
    digraph "taskgraph" {
      graph [rankdir=LR, fontname="Helvetica", fontsize=11];
      node [fontname="Helvetica", fontsize=10];
      edge [fontname="Helvetica", fontsize=9];
      t_a [label="a", shape=ellipse];
    }
    """
    layout = _layout(document, marks or {})
    plan = document.get("plan") or {}
    name = plan.get("name") if isinstance(plan, Mapping) else None
    lines = [
        f"digraph {_dot_string(name if isinstance(name, str) else 'taskgraph')} {{",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node, component, tasks in layout.clusters:
        lines.append(f"  subgraph cluster_{node} {{")
        lines.append(f"    label={_dot_string(component)};")
        lines.extend(f"    {_dot_node(task)}" for task in tasks)
        lines.append("  }")
    lines.extend(f"  {_dot_node(task)}" for task in layout.loose)
    for edge in layout.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_string(edge.label)}")
        if edge.dashed:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {edge.source} -> {edge.target}{suffix};")
    if layout.marks_used:
        lines.append("  subgraph cluster_legend {")
        lines.append('    label="legend";')
        for mark in layout.marks_used:
            legend = _Task(mark, f"legend_{mark}", _PLAIN, mark)
            lines.append(f"    {_dot_node(legend)}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layout(document: Mapping[str, Any], marks: Mapping[str, Mark]) -> _Layout:
    tasks = list(document["tasks"])
    nodes = _node_ids(task["id"] for task in tasks)
    unknown = sorted(set(marks) - set(nodes))
    if unknown:
        raise ValueError(f"marks name tasks that are not in the graph: {', '.join(unknown)}")
    groups: dict[str, list[_Task]] = {}
    loose: list[_Task] = []
    for task in tasks:
        drawn = _Task(
            task["id"], nodes[task["id"]], SHAPES.get(task["type"], _PLAIN), marks.get(task["id"])
        )
        component = task.get("component")
        if component is None:
            loose.append(drawn)
        else:
            groups.setdefault(component, []).append(drawn)
    cluster_ids = _node_ids(sorted(groups), prefix="c_")
    clusters = [(cluster_ids[name], name, groups[name]) for name in sorted(groups)]
    edges = []
    for edge in sorted(document["edges"], key=lambda e: (e["from"], e["to"])):
        for end in (edge["from"], edge["to"]):
            if end not in nodes:
                raise ValueError(f"an edge names a task that is not in the graph: {end}")
        dashed = "removed" in (marks.get(edge["from"]), marks.get(edge["to"]))
        label = ", ".join(sorted(edge.get("artifacts") or ()))
        edges.append(_Edge(nodes[edge["from"]], nodes[edge["to"]], label, dashed))
    used = [mark for mark in MARKS if mark in set(marks.values())]
    return _Layout(clusters, loose, edges, used)


def _node_ids(names: Iterable[str], prefix: str = "t_") -> dict[str, str]:
    """Name → a safe, unique identifier: ``prefix`` + the name's runs of anything but ASCII
    letters and digits replaced by ``_`` (dropped at either end); ``_2``, ``_3``, ... on a clash."""
    listed = list(names)
    seen: set[str] = set()
    for name in listed:
        if name in seen:
            raise ValueError(f"the graph has two tasks with the id {name}")
        seen.add(name)
    return unique_identifiers(
        listed, base_name=lambda name: prefix + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    )


def _marked_nodes(layout: _Layout) -> dict[Mark, list[str]]:
    marked: dict[Mark, list[str]] = {mark: [] for mark in MARKS}
    for task in [*(t for _, _, group in layout.clusters for t in group), *layout.loose]:
        if task.mark is not None:
            marked[task.mark].append(task.node)
    return {mark: sorted(nodes) for mark, nodes in marked.items()}


_MERMAID_SAFE = frozenset(" .,:;=_-+/@*'!?$")


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: anything but letters, digits and a few plain
    marks becomes an entity code (``#35;`` for ``#``), so quotes, brackets, ``#``, ``<``, ``|``
    and backticks stay text."""
    return "".join(ch if ch.isalnum() or ch in _MERMAID_SAFE else f"#{ord(ch)};" for ch in text)


def _mermaid_node(task: _Task) -> str:
    shape = task.shape
    return f'{task.node}{shape.mermaid_open}"{_mermaid_text(task.id)}"{shape.mermaid_close}'


def _dot_string(text: str) -> str:
    """A DOT double-quoted string; backslashes are doubled so ``\\n``-style label escapes in the
    text stay literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_node(task: _Task) -> str:
    shape = task.shape
    attributes = [f"label={_dot_string(task.id)}", f"shape={shape.dot_shape}"]
    style = list(shape.dot_style)
    if shape.dot_peripheries != 1:
        attributes.append(f"peripheries={shape.dot_peripheries}")
    if task.mark is not None:
        mark = MARK_STYLES[task.mark]
        style.append("filled")
        if mark.dot_line:
            style.append(mark.dot_line)
        attributes += [
            f"fillcolor={_dot_string(mark.fill)}",
            f"color={_dot_string(mark.stroke)}",
            "penwidth=2",
        ]
    if style:
        attributes.append(f"style={_dot_string(','.join(style))}")
    return f"{task.node} [{', '.join(attributes)}];"
