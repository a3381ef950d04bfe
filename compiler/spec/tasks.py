"""Tasks: the fields every task has, and one model per task type (a tagged union on `type`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .approval import ApprovalParams
from .base import AgentName, ArtifactRef, Identifier, Matrix, Model, Tag, TaskRef
from .escalation import EscalationPolicy
from .params import (
    AssembleParams,
    DeployParams,
    GenerateCodeParams,
    NoopParams,
    PackageParams,
    PythonParams,
    ShellParams,
    TestParams,
    ValidateParams,
)


class StepFields(Model):
    """Execution settings shared by tasks and delivery steps; unset ones come from `defaults`."""

    description: str = ""
    depends_on: list[TaskRef] = []
    """Tasks that must finish first. Naming a matrix task waits for all its expansions."""
    inputs: dict[Identifier, ArtifactRef] = {}
    """Local name → `<task>.<artifact>`; each input implies an edge from its producer."""
    agent: AgentName | None = None
    """The agent block document to run this task; defaults to `defaults.agents[type]`."""
    retries: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_delay_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    tags: list[Tag] = []
    """Added to `defaults.tags`. Every tag costs a Prefect call per task run: keep them few."""


class TaskBase(StepFields):
    id: Identifier
    outputs: list[Identifier] = []
    """Artifacts this task produces, referenced by others as `<id>.<name>`."""
    matrix: Matrix | None = None


class NoopTask(TaskBase):
    type: Literal["noop"]
    params: NoopParams = NoopParams()


class ShellTask(TaskBase):
    type: Literal["shell"]
    params: ShellParams


class PythonTask(TaskBase):
    type: Literal["python"]
    params: PythonParams


class GenerateCodeTask(TaskBase):
    type: Literal["generate_code"]
    params: GenerateCodeParams = GenerateCodeParams()
    escalation: EscalationPolicy | None = None
    """What to do when the generated code is not good enough; refines `defaults.escalation`."""


class AssembleTask(TaskBase):
    type: Literal["assemble"]
    params: AssembleParams = AssembleParams()


class ValidateTask(TaskBase):
    type: Literal["validate"]
    params: ValidateParams = ValidateParams()


class TestTask(TaskBase):
    __test__ = False  # not a pytest test class

    type: Literal["test"]
    params: TestParams = TestParams()


class PackageTask(TaskBase):
    type: Literal["package"]
    params: PackageParams = PackageParams()


class DeployTask(TaskBase):
    type: Literal["deploy"]
    params: DeployParams = DeployParams()


class ApprovalTask(TaskBase):
    type: Literal["approval"]
    params: ApprovalParams = ApprovalParams()
    outputs: list[Literal["decision"]] = []  # type: ignore[assignment]  # narrowed
    """An approval always produces its `decision` artifact; writing it here is optional."""


Task = Annotated[
    ApprovalTask
    | NoopTask
    | ShellTask
    | PythonTask
    | GenerateCodeTask
    | AssembleTask
    | ValidateTask
    | TestTask
    | PackageTask
    | DeployTask,
    Field(discriminator="type"),
]

TASK_TYPES: tuple[str, ...] = (
    "approval",
    "assemble",
    "deploy",
    "generate_code",
    "noop",
    "package",
    "python",
    "shell",
    "test",
    "validate",
)
"""Every task type, sorted."""

TaskTypeName = Literal[
    "approval",
    "assemble",
    "deploy",
    "generate_code",
    "noop",
    "package",
    "python",
    "shell",
    "test",
    "validate",
]
