"""The built-in event types and their typed ``data``, and :class:`RunContext`, which builds the
events of one flow run.

=========================== =========================================================
type                        data
=========================== =========================================================
``plan2flow.task.started``  :class:`TaskStarted`
``plan2flow.task.retrying`` :class:`TaskRetrying`
``plan2flow.task.completed`` :class:`TaskCompleted`
``plan2flow.task.failed``   :class:`TaskFailed`
``plan2flow.task.not_run``  :class:`TaskNotRun`
``plan2flow.task.cached``   :class:`TaskCached`
``plan2flow.flow.started``  :class:`FlowStarted`
``plan2flow.flow.completed`` :class:`FlowCompleted`
``plan2flow.flow.failed``   :class:`FlowFailed`
``plan2flow.flow.cancelled`` :class:`FlowCancelled`
``plan2flow.agent.health``  :class:`AgentHealth` (random ids: a probe is not a transition)
``plan2flow.artifact.stored`` :class:`ArtifactStored` (id includes the artifact's name)
=========================== =========================================================

Later parts add their own types with :func:`~plan2flow.events.register_event_type`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from plan2flow.events.envelope import Event, EventData, new_event, register_event_type
from plan2flow.events.subjects import check_label

TENANT_ENV = "PLAN2FLOW_TENANT"
DEFAULT_TENANT = "default"


class TaskStarted(EventData):
    tasktype: str | None = None


class TaskRetrying(EventData):
    message: str = ""
    delay_seconds: float | None = Field(default=None, ge=0)


class TaskCompleted(EventData):
    duration_seconds: float | None = Field(default=None, ge=0)


class TaskFailed(EventData):
    message: str = ""
    state: str = "Failed"
    """The final state: ``Failed``, ``TimedOut``, …"""


class TaskNotRun(EventData):
    message: str = ""
    upstream: list[str] = []


class TaskCached(EventData):
    cache_key: str | None = None


class FlowStarted(EventData):
    tasks: int | None = Field(default=None, ge=0)
    parameters: dict[str, Any] = {}


class FlowCompleted(EventData):
    tasks: int | None = Field(default=None, ge=0)
    duration_seconds: float | None = Field(default=None, ge=0)


class FlowFailed(EventData):
    message: str = ""
    failed: list[str] = []
    not_run: list[str] = []


class FlowCancelled(EventData):
    message: str = ""


class AgentHealth(EventData):
    agent: str
    healthy: bool
    detail: str = ""
    latency_seconds: float | None = Field(default=None, ge=0)


class ArtifactStored(EventData):
    name: str
    path: str
    digest: str
    size: int | None = Field(default=None, ge=0)


TASK_EVENTS: dict[str, type[EventData]] = {
    "started": TaskStarted,
    "retrying": TaskRetrying,
    "completed": TaskCompleted,
    "failed": TaskFailed,
    "not_run": TaskNotRun,
    "cached": TaskCached,
}
FLOW_EVENTS: dict[str, type[EventData]] = {
    "started": FlowStarted,
    "completed": FlowCompleted,
    "failed": FlowFailed,
    "cancelled": FlowCancelled,
}

for _name, _model in TASK_EVENTS.items():
    register_event_type(f"plan2flow.task.{_name}", _model)
for _name, _model in FLOW_EVENTS.items():
    register_event_type(f"plan2flow.flow.{_name}", _model)
register_event_type("plan2flow.agent.health", AgentHealth, deterministic=False)
register_event_type("plan2flow.artifact.stored", ArtifactStored, identity=("name",))


def default_tenant() -> str:
    """``PLAN2FLOW_TENANT``, or ``default``."""
    return check_label(os.environ.get(TENANT_ENV) or DEFAULT_TENANT, TENANT_ENV)


@dataclass(frozen=True)
class RunContext:
    """What every event of one flow run shares; its methods build that run's events.

    >>> run = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid="r1")
    >>> event = run.task("started", "load", attempt=1, tasktype="shell")
    >>> event.subject, event.taskid, event.data
    ('plan2flow.acme.etl.task.started', 'load', TaskStarted(tasktype='shell'))
    """

    tenant: str
    plan: str
    graphhash: str | None
    flowrunid: str

    def __post_init__(self) -> None:
        check_label(self.tenant, "tenant")

    def task(self, event: str, taskid: str, *, attempt: int = 1, **data: Any) -> Event:
        """``plan2flow.task.<event>`` of one attempt of one task."""
        return self.event(f"plan2flow.task.{event}", taskid=taskid, attempt=attempt, **data)

    def flow(self, event: str, **data: Any) -> Event:
        """``plan2flow.flow.<event>`` of the run."""
        return self.event(f"plan2flow.flow.{event}", **data)

    def event(
        self, event_type: str, *, taskid: str | None = None, attempt: int | None = None, **data: Any
    ) -> Event:
        """Any registered type, with this run's attributes."""
        return new_event(
            event_type,
            tenant=self.tenant,
            plan=self.plan,
            graphhash=self.graphhash,
            flowrunid=self.flowrunid,
            taskid=taskid,
            attempt=attempt,
            data=data,
        )
