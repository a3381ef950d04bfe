"""Stage 5: TaskGraph → the source of a Prefect flow module, as a string (no I/O here).

The module is meant to be read in pull requests: one line per task (``run.submit``, with its
upstream tasks as ``wait_for``), formatted exactly as ``ruff format`` would, so that generated
files pass ``ruff format --check`` and a reviewer sees nothing but the plan. Plans of more than
:data:`INLINE_LIMIT` tasks submit their tasks from the graph file instead of listing them.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import PurePath
from typing import Any

import jinja2

from ..graph.taskgraph import TaskGraph
from .naming import RESERVED, to_identifier, unique_identifiers

INLINE_LIMIT = 200
"""Above this many tasks, the flow body loads the task list from the graph file."""

LINE_LENGTH = 88
"""ruff's default, which the generated code is formatted for."""

_INDENT = "    "
_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def py_literal(value: Any) -> str:
    """A Python literal for a JSON value, with sorted dict keys and ruff's quote style.

    >>> py_literal({"b": [1, 2.5, None], "a": "it's"})
    '{"a": "it\\'s", "b": [1, 2.5, None]}'
    """
    if isinstance(value, str):
        return py_str(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    items = ", ".join(f"{py_str(k)}: {py_literal(v)}" for k, v in sorted(value.items()))
    return "{" + items + "}"


def py_str(text: str) -> str:
    """A string literal in ruff's preferred quotes: double, unless that needs more escapes."""
    literal = repr(text)
    if literal.startswith("'") and '"' not in text:
        literal = '"' + literal[1:-1].replace("\\'", "'") + '"'
    return literal


def graph_file_name(name: str) -> str:
    return f"{name}.taskgraph.json"


def previous_graph_file_name(name: str) -> str:
    """Where a deployment's source keeps the graph of the version it replaced, beside its own.

    >>> previous_graph_file_name("release")
    'release.previous-taskgraph.json'
    """
    return f"{name}.previous-taskgraph.json"


def flow_function_name(name: str) -> str:
    """The flow function of a plan's module: with `flow_file_name`, a Prefect entrypoint."""
    return to_identifier(name)


def flow_file_name(name: str) -> str:
    """``hello-world`` → ``hello_world_flow.py``: an importable module name."""
    return f"{to_identifier(name).rstrip('_')}_flow.py"


def _call(indent: str, head: str, args: list[str], tail: str = ")") -> list[str]:
    """Format ``head(arg, ...)`` the way ruff does: on one line, else the arguments together on
    one indented line, else one argument per line with a trailing comma."""
    one_line = f"{indent}{head}{', '.join(args)}{tail}"
    if len(one_line) <= LINE_LENGTH:
        return [one_line]
    inner = indent + _INDENT
    hugged = f"{inner}{', '.join(args)}"
    if len(hugged) <= LINE_LENGTH:
        return [f"{indent}{head}", hugged, f"{indent}{tail}"]
    lines = [f"{indent}{head}"]
    for arg in args:
        lines.extend(_argument(inner, arg))
    lines.append(f"{indent}{tail}")
    return lines


def _argument(indent: str, arg: str) -> list[str]:
    """One argument on its own line; a ``wait_for=[...]`` too long for it is exploded."""
    line = f"{indent}{arg},"
    if len(line) <= LINE_LENGTH or not arg.startswith("wait_for=["):
        return [line]
    names = arg.removeprefix("wait_for=[").removesuffix("]").split(", ")
    return [
        f"{indent}wait_for=[",
        *(f"{indent}{_INDENT}{name}," for name in names),
        f"{indent}],",
    ]


def _signature(function_name: str, params: dict[str, Any]) -> list[str]:
    required, optional = [], []
    for name, param in sorted(params.items()):
        annotation = _PY_TYPES[param["type"]]
        if param["required"]:
            required.append(f"{name}: {annotation}")
            continue
        default = param["default"]
        if default is None:
            annotation = f"{annotation} | None"
        optional.append(f"{name}: {annotation} = {py_literal(default)}")
    head = f"def {function_name}("
    return _call("", head, [*required, *optional], ") -> runtime.Outcome:")


def _task_lines(graph: TaskGraph) -> list[str]:
    tasks = graph.document["tasks"]
    names = unique_identifiers((task["id"] for task in tasks), RESERVED)
    lines = []
    for task in tasks:
        args = [py_str(task["id"])]
        if task["depends_on"]:
            args.append("wait_for=[" + ", ".join(names[up] for up in task["depends_on"]) + "]")
        lines.extend(_call(_INDENT, f"{names[task['id']]} = run.submit(", args))
    return lines


@functools.cache
def _template() -> jinja2.Template:
    source = resources.files(__package__).joinpath("templates/flow.py.jinja").read_text("utf-8")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.from_string(source)


def render_flow(graph: TaskGraph, source: str) -> str:
    """The flow module for `graph`, compiled from the plan file `source` (only its name is used,
    so the output does not depend on where the plan lives)."""
    document = graph.document
    plan = document["plan"]
    function_name = flow_function_name(plan["name"])
    description = plan["description"] or f"plan2flow plan {plan['name']}"
    embedded = len(document["tasks"]) > INLINE_LIMIT
    summary = json.dumps(description.splitlines()[0] if description else "", ensure_ascii=False)
    return _template().render(
        source=PurePath(source).name,
        graph_file=graph_file_name(plan["name"]),
        graph_file_literal=py_str(graph_file_name(plan["name"])),
        graph_hash=graph.hash,
        graph_hash_literal=py_str(graph.hash),
        plan_name_literal=py_str(plan["name"]),
        summary=summary[1:-1].replace('"""', '\\"\\"\\"'),
        description_literal=py_str(description),
        max_workers=document["settings"]["max_parallelism"],
        signature=_signature(function_name, document["params"]),
        embedded=embedded,
        task_count=len(document["tasks"]),
        inline_limit=INLINE_LIMIT,
        task_lines=[] if embedded else _task_lines(graph),
        function_name=function_name,
    )
