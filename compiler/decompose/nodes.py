"""The internal task node every decomposition rule produces, and the one place defaults apply."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..spec import Defaults
from ..spec.approval import APPROVAL_OUTPUT
from ..spec.base import MatrixValue
from ..spec.escalation import EscalationPolicy, merge_policies, policy_record
from ..spec.tasks import StepFields


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Which rule made a task, from which part of the plan.

    ``source`` names the part by id (``tasks[extract]``, ``components[models]``), so it survives
    reordering; ``pointer`` locates it in this file for diagnostics and is not part of the graph.
    """

    rule: str
    source: str
    pointer: str

    @property
    def written(self) -> bool:
        """Whether the task is written in `tasks` (possibly expanded by a matrix)."""
        return self.source.startswith("tasks[")


@dataclasses.dataclass(frozen=True, slots=True)
class Dependency:
    """An upstream task as written, and where it is written."""

    task: str
    pointer: str


@dataclasses.dataclass(frozen=True, slots=True)
class Input:
    """An input artifact: local name → ``task.artifact``, and where it is written."""

    name: str
    task: str
    artifact: str
    pointer: str


@dataclasses.dataclass(frozen=True, slots=True)
class TaskNode:
    """One task after decomposition: normalized, with provenance, before linking."""

    id: str
    type: str
    description: str
    depends_on: tuple[Dependency, ...]
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    params: dict[str, Any]
    agent: str | None
    retries: int
    retry_delay_seconds: float
    timeout_seconds: float | None
    tags: tuple[str, ...]
    origin: Origin
    component: str | None = None
    matrix_axes: tuple[tuple[str, tuple[MatrixValue, ...]], ...] = ()
    matrix: tuple[tuple[str, MatrixValue], ...] = ()
    matrix_pointer: str = ""
    allow_unverified: bool = False
    escalation: dict[str, Any] | None = None
    """The effective escalation policy of a `generate_code` task, as recorded; None if none."""


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


def parse_input(name: str, ref: str, pointer: str) -> Input:
    """Split ``task.artifact`` at its last dot: generated ids contain dots, artifact names don't."""
    task, _, artifact = ref.rpartition(".")
    return Input(name, task, artifact, pointer)


def make_node(
    *,
    id: str,
    type: str,
    step: StepFields,
    defaults: Defaults,
    pointer: str,
    origin: Origin,
    params: dict[str, Any],
    outputs: Sequence[str] = (),
    extra_depends_on: Sequence[Dependency] = (),
    extra_inputs: Mapping[str, Input] | None = None,
    extra_tags: Sequence[str] = (),
    component: str | None = None,
    matrix_axes: Mapping[str, Sequence[MatrixValue]] | None = None,
    matrix_pointer: str = "",
    escalation: EscalationPolicy | None = None,
) -> TaskNode:
    """Build a node from written step fields, applying `defaults` where the step sets nothing.

    An approval waits for people, not for a process: it is never retried, Prefect's task
    timeout would cut its wait short (its deadline is `params.timeout_seconds`), and it always
    produces its `decision` artifact."""
    approval = type == "approval"
    if approval:
        outputs = (*outputs, APPROVAL_OUTPUT)
    inputs = dict(extra_inputs or {})
    for name, ref in step.inputs.items():
        inputs[name] = parse_input(name, ref, f"{pointer}/inputs/{name}")
    policy = merge_policies(defaults.escalation, escalation) if type == "generate_code" else None
    depends_on = [
        *extra_depends_on,
        *(Dependency(dep, f"{pointer}/depends_on/{i}") for i, dep in enumerate(step.depends_on)),
    ]
    return TaskNode(
        id=id,
        type=type,
        description=step.description,
        depends_on=tuple(depends_on),
        inputs=tuple(inputs[name] for name in sorted(inputs)),
        outputs=tuple(dict.fromkeys(outputs)),  # written order: diagnostics point into it
        params=params,
        agent=step.agent,
        retries=0 if approval else defaults.retries if step.retries is None else step.retries,
        # float(): a plan may write 10 or 10.0; both must give the same graph bytes.
        retry_delay_seconds=float(
            defaults.retry_delay_seconds
            if step.retry_delay_seconds is None
            else step.retry_delay_seconds
        ),
        timeout_seconds=None
        if approval
        else _seconds(
            defaults.timeout_seconds if step.timeout_seconds is None else step.timeout_seconds
        ),
        tags=tuple(sorted({*defaults.tags, *extra_tags, *step.tags})),
        origin=origin,
        component=component,
        matrix_axes=tuple(
            (axis, tuple(values)) for axis, values in sorted((matrix_axes or {}).items())
        ),
        matrix_pointer=matrix_pointer,
        allow_unverified=bool(params.get("allow_unverified", False)) if type == "deploy" else False,
        escalation=None if policy is None else policy_record(policy),
    )
