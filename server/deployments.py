"""``plan2flow deploy``: one Prefect deployment per plan, created or updated only when it changed.

A deployment's source is a content-addressed directory under the plan2flow home
(``deployments/<plan>/<hash prefix>/``) holding the graph and its flow module, so a run that
started from an older version keeps its files while a newer version is deployed beside it.
The graph hash is the deployment's version: a plan whose hash, work pool and parameter values
are unchanged is left alone, so deploying twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from plan2flow.compiler import (
    TaskGraph,
    TaskGraphError,
    diff_graphs,
    diff_summary,
    flow_file_name,
    flow_function_name,
    graph_file_name,
    previous_graph_file_name,
    read_taskgraph,
    write_all_atomic,
    write_outputs,
)
from plan2flow.home import plan2flow_home

from .errors import OperationError

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

DEPLOYMENT_TAG = "plan2flow"
SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"
# Interval schedules count from a fixed anchor, so deploying again does not shift them.
INTERVAL_ANCHOR = datetime.datetime(2000, 1, 1)


class DeployError(OperationError):
    """A plan that cannot be deployed as asked, or no server to deploy it to."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One plan to deploy, compiled, with the deployment's name, pool and parameter values."""

    source: str
    graph: TaskGraph
    flow_source: str
    name: str
    pool: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def flow_name(self) -> str:
        return str(self.graph.document["plan"]["name"])

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def entrypoint(self) -> str:
        return f"{flow_file_name(self.graph.name)}:{flow_function_name(self.graph.name)}"


@dataclasses.dataclass(frozen=True)
class Deployed:
    """What `deploy` did to one plan's deployment."""

    target: Target
    change: str  # "created", "updated" or "unchanged"
    details: tuple[str, ...]
    deployment_id: str


def schedule_kind(schedule: Mapping[str, Any]) -> tuple[str, Any]:
    """The one kind a plan schedule sets: ("cron", "0 3 * * *"), ("interval", 60.0), ..."""
    if schedule.get("cron") is not None:
        return "cron", schedule["cron"]
    if schedule.get("interval_seconds") is not None:
        return "interval", float(schedule["interval_seconds"])
    return "rrule", schedule["rrule"]


def describe_schedule(schedule: Mapping[str, Any] | None) -> str:
    if not schedule:
        return "none"
    kind, value = schedule_kind(schedule)
    shown = f"every {value:g} s" if kind == "interval" else f"{kind} {value!r}"
    return f"{shown} ({schedule.get('timezone') or 'UTC'})"


def prefect_schedules(schedule: Mapping[str, Any] | None) -> list[Any]:
    """The plan's schedule as Prefect schedule objects (validated by Prefect's own models)."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    if not schedule:
        return []
    timezone = schedule.get("timezone") or "UTC"
    kind, value = schedule_kind(schedule)
    if kind == "cron":
        return [CronSchedule(cron=value, timezone=timezone)]
    if kind == "interval":
        return [
            IntervalSchedule(
                interval=datetime.timedelta(seconds=value),
                anchor_date=INTERVAL_ANCHOR,
                timezone=timezone,
            )
        ]
    return [RRuleSchedule(rrule=value, timezone=timezone)]


def preflight(target: Target) -> list[str]:
    """Problems that would make the deployment fail later: bad schedules, missing values."""
    from pydantic import ValidationError

    problems: list[str] = []
    schedule = target.graph.document.get("schedule")
    try:
        prefect_schedules(schedule)
    except (ValidationError, ValueError) as error:
        reason = "; ".join(
            e["msg"] for e in (error.errors() if isinstance(error, ValidationError) else [])
        ) or str(error)
        problems.append(f"schedule {describe_schedule(schedule)}: {reason}")
    params = target.graph.document["params"]
    for name in sorted(target.parameters):
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            problems.append(f"--param {name!r}: the plan has no such parameter (it has: {known})")
    if schedule:
        missing = sorted(
            n for n, spec in params.items() if spec["required"] and n not in target.parameters
        )
        if missing:
            problems.append(
                f"the plan runs on a schedule, but parameter(s) {', '.join(missing)} have no "
                "default: give the deployment a value with --param NAME=VALUE"
            )
    return problems


def plan_targets(
    compiled: Sequence[tuple[str, TaskGraph, str]],
    params: Sequence[str],
    name: str | None,
    pool: str,
) -> tuple[list[Target], list[str]]:
    """One target per compiled plan (source, graph, flow module), and every problem found.

    Each `NAME=VALUE` goes to the plans that declare NAME, typed by their declaration; a
    parameter that no plan declares is a problem rather than silently dropped.
    """
    from .launch import LaunchError, parse_params

    declared = {n for _, graph, _ in compiled for n in graph.document["params"]}
    problems = [
        f"--param {pair!r}: no plan has this parameter"
        for pair in params
        if pair.partition("=")[0] not in declared
    ]
    targets = []
    for source, graph, flow_source in compiled:
        mine = [p for p in params if p.partition("=")[0] in graph.document["params"]]
        try:
            values = parse_params(mine, graph.document["params"], require_all=False)
        except LaunchError as error:
            values = {}
            problems.append(f"{source}: {error}")
        target = Target(source, graph, flow_source, name or graph.name, pool, values)
        problems += [f"{source}: {problem}" for problem in preflight(target)]
        targets.append(target)
    return targets, problems


def source_directory(graph: TaskGraph, home: Path | None = None) -> Path:
    digest = graph.hash.partition(":")[2][:16]
    return (home or plan2flow_home()) / "deployments" / graph.name / digest


def write_source(target: Target, home: Path | None = None) -> Path:
    """Write the graph and its flow module into the deployment's source directory."""
    directory = source_directory(target.graph, home)
    write_outputs(target.graph, target.flow_source, directory)
    return directory


def _schedule_summary(schedules: Sequence[Any]) -> list[str]:
    found = []
    for item in schedules:
        inner = getattr(item, "schedule", item)
        data = inner.model_dump(mode="json", exclude={"anchor_date"})
        found.append(", ".join(f"{k}={v}" for k, v in sorted(data.items()) if v is not None))
    return sorted(found)


def _current(deployment: Any) -> dict[str, Any]:
    return {
        "version": deployment.version,
        "work pool": deployment.work_pool_name,
        "description": deployment.description or "",
        "parameters": dict(deployment.parameters or {}),
        "schedule": _schedule_summary(deployment.schedules or []),
        "entrypoint": deployment.entrypoint,
    }


def _desired(target: Target) -> dict[str, Any]:
    return {
        "version": target.graph.hash,
        "work pool": target.pool,
        "description": target.graph.document["plan"]["description"],
        "parameters": dict(target.parameters),
        "schedule": _schedule_summary(prefect_schedules(target.graph.document.get("schedule"))),
        "entrypoint": target.entrypoint,
    }


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """What a deploy changes, field by field (old → new)."""
    lines = []
    for key, new in desired.items():
        old = current.get(key)
        if old != new:
            lines.append(f"{key}: {_show(old)} → {_show(new)}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v!r}" for k, v in sorted(value.items())) or "none"
    return repr(value) if value not in (None, "") else "none"


def deploy(target: Target, home: Path | None = None) -> Deployed:
    """Create or update the target's deployment; leave an unchanged one alone."""
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    desired = _desired(target)
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_deployment_by_name(target.full_name)
        except ObjectNotFound:
            existing = None
    if existing is not None:
        changed = differences(_current(existing), desired)
        if not changed:
            return Deployed(target, "unchanged", (), str(existing.id))
    previous = None if existing is None else previous_graph(existing, target)
    directory = write_source(target, home)
    if previous is not None and previous.hash != target.graph.hash:
        # The first run of this version publishes the diff against it (flows/plan_diff.py);
        # a deploy that changes only settings keeps the one its version's first run may need.
        kept = directory / previous_graph_file_name(target.graph.name)
        write_all_atomic([(kept, previous.text)])
    # `from_source` and `apply` are sync-compatible: called from sync code they return values.
    loaded = cast(
        "Flow[..., Any]",
        prefect_flow.from_source(source=str(directory), entrypoint=target.entrypoint),
    )
    # `Flow.deploy` of Prefect 3.8 lists the pool's workers with a request its own server
    # rejects (HTTP 422); building the deployment and applying it avoids that call.
    deployment = cast(
        "RunnerDeployment",
        loaded.to_deployment(
            name=target.name,
            work_pool_name=target.pool,
            schedules=prefect_schedules(target.graph.document.get("schedule")),
            parameters=dict(target.parameters),
            description=target.graph.document["plan"]["description"] or None,
            version=target.graph.hash,
            tags=[DEPLOYMENT_TAG],
        ),
    )
    deployment_id = cast(UUID, deployment.apply(work_pool_name=target.pool))
    if existing is None:
        return Deployed(target, "created", (), str(deployment_id))
    details = list(changed)
    if previous is not None:
        details.append(
            f"graph: {diff_summary(diff_graphs(previous.document, target.graph.document))}"
        )
    return Deployed(target, "updated", tuple(details), str(deployment_id))


def previous_graph(existing: Any, target: Target) -> TaskGraph | None:
    """The graph of the deployed version, read from its source directory; ``None`` when it
    cannot be read (a deployment made by other means, a directory removed)."""
    directory = next(
        (
            step[SET_WORKING_DIRECTORY]["directory"]
            for step in existing.pull_steps or []
            if SET_WORKING_DIRECTORY in step
        ),
        None,
    )
    if directory is None:
        return None
    try:
        return read_taskgraph(Path(directory) / graph_file_name(target.graph.name))
    except TaskGraphError:
        return None


def check_pool(pool: str) -> None:
    """Fail early, before anything is written, when the work pool does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise DeployError(
                f"work pool {pool!r} does not exist on the server; `plan2flow up` creates "
                f"one, or: prefect work-pool create {pool} --type process"
            ) from None


__all__ = [
    "DEPLOYMENT_TAG",
    "DeployError",
    "Deployed",
    "Target",
    "check_pool",
    "deploy",
    "describe_schedule",
    "differences",
    "prefect_schedules",
    "preflight",
    "source_directory",
]
