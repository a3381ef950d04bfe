"""The TaskGraph file: the one contract between the compiler and everything that runs a plan.

``plan2flow compile`` (and ``deploy``, ``run``, ``golden update``) write a TaskGraph as two files,
``<name>.taskgraph.json`` and the flow module ``<name>_flow.py`` beside it
(:func:`output_files`, :func:`write_outputs`); the runtime, ``run`` of a compiled graph, ``diff``
and ``graph`` read one back (:func:`read_taskgraph`, :func:`parse_taskgraph`). Its fields are
described in docs/taskgraph.md and typed here by :class:`TaskGraphDocument`.

A file that cannot be read as a TaskGraph raises :class:`TaskGraphError`, whose message is one
line for the user: what is wrong, prefixed by the file's name when it is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from .codegen import flow_file_name, graph_file_name
from .errors import CompilerError
from .files import write_all_atomic
from .graph.taskgraph import TaskGraph, graph_hash


class TaskGraphError(CompilerError, ValueError):
    """A file or text that is not an intact TaskGraph; ``reason`` says why, ``label`` where."""

    def __init__(self, reason: str, label: str | None = None) -> None:
        self.reason = reason
        self.label = label
        super().__init__(f"{label}: {reason}" if label else reason)


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)


class PlanInfo(_Entry):
    """``plan``: the plan's metadata."""

    description: str
    labels: dict[str, str]
    name: str
    version: str | None


class ParamInfo(_Entry):
    """One entry of ``params``: a plan parameter's declaration."""

    default: Any
    description: str
    enum: list[Any] | None
    required: bool
    type: str


class ScheduleInfo(_Entry):
    """``schedule``: exactly one of ``cron``, ``interval_seconds``, ``rrule``."""

    cron: str | None
    interval_seconds: float | None
    rrule: str | None
    timezone: str | None


class BudgetInfo(_Entry):
    """``settings.budget``: US dollars per period (``day``, ``week``, ``month``, ``year``,
    ``total``)."""

    usd: float
    period: str


class Settings(_Entry):
    """``settings``."""

    max_parallelism: int
    budget: BudgetInfo | None = None
    """Present only when the plan declares a budget."""

    @model_serializer(mode="wrap")
    def _without_absent_budget(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if dumped.get("budget") is None:
            dumped.pop("budget", None)
        return dumped


class AgentRef(_Entry):
    """A task's ``agent``: the Block document that runs it."""

    block_document: str
    block_schema_checksum: str
    block_type: str


class Origin(_Entry):
    """A task's ``origin``: the decomposition rule and the part of the plan it came from."""

    rule: str
    source: str


class TaskEntry(_Entry):
    """One task, every default applied; ``escalation`` is the only field that may be absent."""

    agent: AgentRef | None
    component: str | None
    depends_on: list[str]
    description: str
    hash: str
    id: str
    inputs: dict[str, str]
    matrix: dict[str, Any]
    origin: Origin
    outputs: list[str]
    params: dict[str, Any]
    retries: int
    retry_delay_seconds: float
    tags: list[str]
    timeout_seconds: float | None
    type: str
    escalation: dict[str, Any] | None = None
    """The effective escalation policy of a `generate_code` task; absent when it has none."""

    @model_serializer(mode="wrap")
    def _absent_escalation(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumped as the file holds it: no ``escalation`` key where the task has none."""
        dumped: dict[str, Any] = handler(self)
        if dumped.get("escalation") is None:
            dumped.pop("escalation", None)
        return dumped


class EdgeEntry(_Entry):
    """One edge: ``from`` → ``to``, with the artifacts it carries."""

    artifacts: list[str]
    from_: str = Field(alias="from")
    to: str


class ArtifactEntry(_Entry):
    """One artifact: its producer and consumers."""

    consumers: list[str]
    id: str
    name: str
    producer: str


class TaskGraphDocument(_Entry):
    """A TaskGraph v1 document, typed (docs/taskgraph.md): every field present, nothing else."""

    api_version: str = Field(alias="apiVersion")
    artifacts: list[ArtifactEntry]
    edges: list[EdgeEntry]
    hash: str
    kind: Literal["TaskGraph"]
    params: dict[str, ParamInfo]
    plan: PlanInfo
    schedule: ScheduleInfo | None
    settings: Settings
    tasks: list[TaskEntry]

    @classmethod
    def of(cls, document: dict[str, Any]) -> TaskGraphDocument:
        """The typed form of a document; :class:`TaskGraphError` names the first bad field."""
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
            ).lstrip(".")
            problem = "is missing" if first["type"] == "missing" else f"is wrong: {first['msg']}"
            raise TaskGraphError(f"not a TaskGraph ({where} {problem})") from None


def parse_taskgraph(data: str | bytes) -> dict[str, Any]:
    """The TaskGraph document in ``data``, checked only for what drawing it needs: tasks with
    unique string ids and types, components, edges between known tasks. The hash is not
    checked, so a graph edited by hand can still be drawn; :func:`read_taskgraph` checks all.

    >>> parse_taskgraph('{"kind": "TaskGraph", "tasks": [], "edges": []}')["kind"]
    'TaskGraph'
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = json.loads(text)
    except UnicodeDecodeError:
        raise TaskGraphError("not a TaskGraph (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise TaskGraphError(f"not a TaskGraph (invalid JSON: {error})") from None
    if not isinstance(document, dict) or document.get("kind") != "TaskGraph":
        raise TaskGraphError("not a TaskGraph (kind is not 'TaskGraph')")
    ids = _check_tasks(document.get("tasks"))
    _check_edges(document.get("edges"), ids)
    return document


def read_taskgraph(source: str | bytes | Path, *, label: str | None = None) -> TaskGraph:
    """A TaskGraph from a file (a :class:`~pathlib.Path`) or its text, with every field checked
    against :class:`TaskGraphDocument` and its text against the hash it records: a graph edited
    after it was compiled is refused. Errors are :class:`TaskGraphError`, labelled with
    ``label`` (by default the path, when reading a file)."""
    if isinstance(source, Path):
        label = label if label is not None else str(source)
        try:
            source = source.read_bytes()
        except OSError as error:
            raise TaskGraphError(f"cannot read: {error.strerror or error}", label) from None
    try:
        document = parse_taskgraph(source)
        TaskGraphDocument.of(document)
    except TaskGraphError as error:
        raise TaskGraphError(error.reason, label) from None
    text = source.decode("utf-8") if isinstance(source, bytes) else source
    actual = graph_hash(text)
    if document["hash"] != actual:
        raise TaskGraphError(
            f"the graph was edited after it was compiled (its content hashes to {actual}, it "
            f"records {document['hash']}); compile the plan again",
            label,
        )
    return TaskGraph(document["plan"]["name"], actual, text, document)


def output_files(graph: TaskGraph, flow_source: str, directory: Path) -> list[tuple[Path, str]]:
    """The two files of a compiled plan in ``directory``: its TaskGraph, then its flow module."""
    return [
        (directory / graph_file_name(graph.name), graph.text),
        (directory / flow_file_name(graph.name), flow_source),
    ]


def write_outputs(graph: TaskGraph, flow_source: str, directory: Path) -> Path:
    """Write the TaskGraph and its flow module into ``directory``, both or neither (see
    :func:`~.files.write_all_atomic`); return the flow module's path."""
    files = output_files(graph, flow_source, directory)
    write_all_atomic(files)
    return files[1][0]


def _check_tasks(tasks: Any) -> set[str]:
    if not isinstance(tasks, list):
        raise TaskGraphError("not a TaskGraph ('tasks' is not a list)")
    ids: set[str] = set()
    for position, task in enumerate(tasks):
        where = f"tasks[{position}]"
        if not isinstance(task, dict):
            raise TaskGraphError(f"not a TaskGraph ({where} is not an object)")
        for field in ("id", "type"):
            if not isinstance(task.get(field), str):
                raise TaskGraphError(f"not a TaskGraph ({where}.{field} is not a string)")
        if not isinstance(task.get("component"), str | None):
            raise TaskGraphError(
                f"not a TaskGraph ({where}.component is neither a string nor null)"
            )
        if task["id"] in ids:
            raise TaskGraphError(f"not a TaskGraph ({where}.id repeats the id {task['id']!r})")
        ids.add(task["id"])
    return ids


def _check_edges(edges: Any, ids: set[str]) -> None:
    if not isinstance(edges, list):
        raise TaskGraphError("not a TaskGraph ('edges' is not a list)")
    for position, edge in enumerate(edges):
        where = f"edges[{position}]"
        if not isinstance(edge, dict):
            raise TaskGraphError(f"not a TaskGraph ({where} is not an object)")
        for field in ("from", "to"):
            end = edge.get(field)
            if not isinstance(end, str) or end not in ids:
                raise TaskGraphError(
                    f"not a TaskGraph ({where}.{field} names no task of the graph)"
                )
        artifacts = edge.get("artifacts", [])
        if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
            raise TaskGraphError(f"not a TaskGraph ({where}.artifacts is not a list of names)")
