"""``plan2flow deploy --prefect-yaml``: the deployments as ``prefect.yaml`` entries.

For teams that run ``prefect deploy`` in their own CI. The entries say what ``plan2flow deploy``
would create (entrypoint, version, description, parameters, schedule, work pool, tag); the rest of
an existing file (its build, push and pull steps, other deployments) is kept as it is.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

import yaml

from .deployments import DEPLOYMENT_TAG, INTERVAL_ANCHOR, Target, schedule_kind

HEADER = """\
# Prefect deployments of plan2flow plans (`plan2flow deploy --prefect-yaml`).
# Deploy them with `prefect --no-prompt deploy --all` from this directory.
# plan2flow rewrites the entries whose name and entrypoint it owns and keeps everything else.
# Without a `pull` section, Prefect runs the flows from the directory `prefect deploy` ran in;
# for workers on other machines add a git_clone pull step (see plan2flow's deploy/prefect.yaml).
"""


def _schedules(target: Target) -> list[dict[str, Any]]:
    schedule = target.graph.document.get("schedule")
    if not schedule:
        return []
    kind, value = schedule_kind(schedule)
    entry: dict[str, Any]
    if kind == "interval":
        entry = {"interval": value, "anchor_date": INTERVAL_ANCHOR.isoformat()}
    else:
        entry = {kind: value}
    entry["timezone"] = schedule.get("timezone") or "UTC"
    entry["active"] = True
    return [entry]


def deployment_entry(target: Target, entrypoint: str | None = None) -> dict[str, Any]:
    """One `deployments:` item of prefect.yaml; `entrypoint` is relative to the file."""
    return {
        "name": target.name,
        "version": target.graph.hash,
        "tags": [DEPLOYMENT_TAG],
        "description": target.graph.document["plan"]["description"] or None,
        "entrypoint": entrypoint or target.entrypoint,
        "parameters": dict(sorted(target.parameters.items())),
        "work_pool": {"name": target.pool, "work_queue_name": None, "job_variables": {}},
        "schedules": _schedules(target),
    }


def merge_deployments(existing: str | None, targets: Sequence[Target], flows_dir: str = "") -> str:
    """The prefect.yaml text with the targets' entries added or replaced; the flow modules are
    in `flows_dir`, relative to the file."""
    from prefect import __version__ as prefect_version

    document: dict[str, Any]
    if existing is None:
        document = {
            "name": "plan2flow",
            "prefect-version": prefect_version,
            "build": None,
            "push": None,
            "deployments": [],
        }
    else:
        loaded = yaml.safe_load(existing)
        if not isinstance(loaded, dict):
            raise ValueError("not a prefect.yaml (expected a mapping at the top)")
        document = loaded
    entries = document.get("deployments")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ValueError("`deployments` is not a list")
    for target in targets:
        entrypoint = posixpath.join(flows_dir, target.entrypoint) if flows_dir else None
        entry = deployment_entry(target, entrypoint)
        for index, item in enumerate(entries):
            if (
                isinstance(item, dict)
                and item.get("name") == entry["name"]
                and item.get("entrypoint") == entry["entrypoint"]
            ):
                entries[index] = entry
                break
        else:
            entries.append(entry)
    document["deployments"] = entries
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    keeps_header = existing is None or existing.startswith(HEADER)
    return (HEADER if keeps_header else "") + body


__all__ = ["deployment_entry", "merge_deployments"]
