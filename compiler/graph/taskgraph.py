"""Stage 4c: the ordered, linked graph → the TaskGraph v1 document, its hashes and its text.

The text is canonical JSON laid out for review: one top-level field per line, and one task, edge or
artifact per line (each a compact canonical JSON object), so a pull request shows one changed line
per changed task. The graph hash is the digest of that text without its top-level ``hash`` line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..decompose import AGENT_BLOCK_TYPES, TaskNode
from ..decompose.agents import AGENT_SCHEMA_CHECKSUMS
from ..spec import PlanSpec
from ..spec.base import API_VERSION
from .canonical import canonical_json, compact_json, digest
from .link import LinkedGraph

KIND = "TaskGraph"


@dataclasses.dataclass(frozen=True)
class TaskGraph:
    """A compiled plan: its document, canonical text and hash."""

    name: str
    hash: str
    text: str
    document: dict[str, Any]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.document["tasks"])


def render_document(document: dict[str, Any]) -> str:
    """The reviewable canonical layout of a TaskGraph document (see the module docstring)."""
    lines = ["{"]
    keys = sorted(document)
    for position, key in enumerate(keys):
        value = document[key]
        comma = "," if position < len(keys) - 1 else ""
        if isinstance(value, list) and value:
            items = ",\n".join("    " + compact_json(item) for item in value)
            lines.append(f"  {compact_json(key)}: [\n{items}\n  ]{comma}")
        else:
            lines.append(f"  {compact_json(key)}: {compact_json(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_hash(text: str) -> str:
    """The digest of a rendered TaskGraph without its top-level ``hash`` line."""
    kept = [line for line in text.split("\n") if not line.startswith('  "hash": ')]
    return digest("\n".join(kept))


def _task_entry(node: TaskNode, graph: LinkedGraph) -> dict[str, Any]:
    agent = None
    if node.agent is not None:
        block_type = AGENT_BLOCK_TYPES[node.type]
        agent = {
            "block_document": node.agent,
            "block_schema_checksum": AGENT_SCHEMA_CHECKSUMS[block_type],
            "block_type": block_type,
        }
    entry: dict[str, Any] = {
        "agent": agent,
        "component": node.component,
        "depends_on": graph.upstream[node.id],
        "description": node.description,
        "id": node.id,
        "inputs": graph.inputs[node.id],
        "matrix": dict(node.matrix),
        "origin": {"rule": node.origin.rule, "source": node.origin.source},
        "outputs": sorted(node.outputs),
        "params": node.params,
        "retries": node.retries,
        "retry_delay_seconds": node.retry_delay_seconds,
        "tags": list(node.tags),
        "timeout_seconds": node.timeout_seconds,
        "type": node.type,
    }
    if node.escalation is not None:
        # Only where a plan declares one: graphs of plans without escalation keep their bytes.
        entry["escalation"] = node.escalation
    return entry


def _task_hash(entry: dict[str, Any], upstream_hashes: list[str]) -> str:
    """Covers the task's own content (not where it came from) and its upstream tasks' hashes,
    so a task keeps its hash while nothing it depends on changes."""
    content = {k: v for k, v in entry.items() if k != "origin"}
    return digest(canonical_json({"task": content, "upstream": upstream_hashes}))


def _plan_fields(spec: PlanSpec) -> dict[str, Any]:
    meta = spec.metadata
    return {
        "description": meta.description,
        "labels": dict(meta.labels),
        "name": meta.name,
        "version": meta.version,
    }


def _params(spec: PlanSpec) -> dict[str, Any]:
    return {
        name: {
            "default": param.default,
            "description": param.description,
            "enum": param.enum,
            "required": "default" not in param.model_fields_set,
            "type": param.type,
        }
        for name, param in sorted(spec.params.items())
    }


def _settings(spec: PlanSpec) -> dict[str, Any]:
    """``settings``; ``budget`` only when the plan declares one (graphs without stay as they
    were, hash included)."""
    settings: dict[str, Any] = {"max_parallelism": spec.defaults.max_parallelism}
    if spec.budget is not None:
        settings["budget"] = spec.budget.model_dump(mode="json")
    return settings


def build_taskgraph(spec: PlanSpec, graph: LinkedGraph, order: list[str]) -> TaskGraph:
    hashes: dict[str, str] = {}
    tasks = []
    for task_id in order:
        entry = _task_entry(graph.nodes[task_id], graph)
        entry["hash"] = hashes[task_id] = _task_hash(
            entry, [hashes[up] for up in graph.upstream[task_id]]
        )
        tasks.append(entry)

    consumers: dict[str, list[str]] = {}
    for task_id, refs in graph.inputs.items():
        for ref in refs.values():
            consumers.setdefault(ref, []).append(task_id)
    artifacts = [
        {
            "consumers": sorted(set(consumers.get(f"{task_id}.{name}", []))),
            "id": f"{task_id}.{name}",
            "name": name,
            "producer": task_id,
        }
        for task_id in order
        for name in sorted(graph.nodes[task_id].outputs)
    ]
    artifacts.sort(key=lambda artifact: str(artifact["id"]))
    edges = [
        {"artifacts": list(edge.artifacts), "from": up, "to": down}
        for (up, down), edge in sorted(graph.edges.items())
    ]
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "artifacts": artifacts,
        "edges": edges,
        "kind": KIND,
        "params": _params(spec),
        "plan": _plan_fields(spec),
        "schedule": spec.schedule.model_dump(mode="json") if spec.schedule else None,
        "settings": _settings(spec),
        "tasks": tasks,
    }
    unhashed = render_document(document)
    document["hash"] = digest(unhashed)
    # The text without its hash line is `unhashed`: insert the line rather than render again.
    hash_line = f'\n  "hash": {compact_json(document["hash"])},\n  "kind": '
    text = unhashed.replace('\n  "kind": ', hash_line, 1)
    return TaskGraph(spec.metadata.name, document["hash"], text, document)
