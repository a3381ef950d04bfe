"""The top of a plan: metadata, params, defaults, schedule and what it runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from .base import AgentName, Model, PythonName, Tag, pattern
from .budget import Budget
from .components import Component, Delivery
from .escalation import EscalationPolicy
from .slo import Slo
from .tasks import Task, TaskTypeName

ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]


class Metadata(Model):
    name: Annotated[
        str,
        StringConstraints(
            pattern=pattern(
                r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
                "a lowercase DNS label (a-z, 0-9 and '-', at most 63 characters)",
            )
        ),
    ]
    """A lowercase DNS label: the flow's and the output files' name."""
    version: str | None = None
    description: str = ""
    labels: dict[str, str] = {}


class ParamSpec(Model):
    """A typed plan parameter; it becomes a parameter of the generated flow."""

    type: ParamType = "string"
    default: JsonValue = None
    """Without a default, the parameter must be given at run time."""
    description: str = ""
    enum: Annotated[list[JsonValue], Field(min_length=1)] | None = None


class Defaults(Model):
    """Settings every task gets unless it sets its own."""

    retries: Annotated[int, Field(ge=0, le=100)] = 0
    retry_delay_seconds: Annotated[float, Field(ge=0, le=86400)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    tags: list[Tag] = []
    max_parallelism: Annotated[int, Field(ge=1, le=1024)] = 4
    agents: dict[TaskTypeName, AgentName] = {}
    """Task type → agent block document name."""
    escalation: EscalationPolicy | None = None
    """The escalation policy of every `generate_code` task (tasks and components refine it)."""


class Schedule(Model):
    cron: (
        Annotated[
            str,
            StringConstraints(
                pattern=pattern(
                    r"^\s*(\S+\s+){4,5}\S+\s*$|^@(yearly|annually|monthly|weekly|daily|hourly)$",
                    "a cron expression of 5 or 6 fields, or @daily, @hourly, ...",
                )
            ),
        ]
        | None
    ) = None
    """A cron expression of 5 fields (or 6 with seconds), or `@daily` and friends."""
    interval_seconds: Annotated[float, Field(gt=0)] | None = None
    rrule: (
        Annotated[
            str,
            StringConstraints(
                pattern=pattern(
                    r"^(DTSTART[:;][^\n]+\n)?(RRULE:)?FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY|MINUTELY)"
                    r"(;[A-Z]+=[^;\s]+)*$",
                    "an RFC 5545 recurrence rule such as FREQ=WEEKLY;BYDAY=MO;BYHOUR=9",
                )
            ),
        ]
        | None
    ) = None
    """An RFC 5545 recurrence rule (`FREQ=...`), optionally after a `DTSTART` line."""
    timezone: str = "UTC"
    """An IANA time zone, such as `Europe/Berlin`."""

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        kinds = (self.cron, self.interval_seconds, self.rrule)
        if sum(kind is not None for kind in kinds) != 1:
            raise ValueError(
                "a schedule needs exactly one of 'cron', 'interval_seconds' and 'rrule'"
            )
        return self


class PlanSpec(Model):
    """A plan: what to run, in which order, with which settings."""

    api_version: Literal["plan2flow/v1"] = Field(alias="apiVersion")
    kind: Literal["Plan"]
    metadata: Metadata
    params: dict[PythonName, ParamSpec] = {}
    defaults: Defaults = Defaults()
    schedule: Schedule | None = None
    tasks: list[Task] = []
    components: list[Component] = []
    delivery: Delivery | None = None
    slo: Slo | None = None
    """Service-level objectives of the plan's runs (alert rules: ``plan2flow slo rules``)."""
    budget: Budget | None = None
    """What the plan's runs may spend per period (compute and model tokens, US dollars)."""
