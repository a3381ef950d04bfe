"""The ``plan2flow.escalation.*`` event types, registered with the event bus's registry.

=================================== ==============================================
type                                data
=================================== ==============================================
``plan2flow.escalation.started``    :class:`EscalationStarted`
``plan2flow.escalation.variant_scored`` :class:`VariantScored` (id includes the label)
``plan2flow.escalation.human_requested`` :class:`HumanRequested` (id includes the round)
``plan2flow.escalation.human_answered`` :class:`HumanAnswered` (id includes the round)
``plan2flow.escalation.finished``   :class:`EscalationFinished` (id includes the record id)
=================================== ==============================================

Redactions are counted per entity type; no value found by the gateway is ever in an event.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from plan2flow.events import EventBus, EventData, RunContext, register_event_type


class EscalationStarted(EventData):
    tiers: list[str]
    threshold: float = Field(ge=0, le=1)
    variants: int = Field(ge=1)


class VariantScored(EventData):
    label: str
    tier: str
    model: str | None = None
    score: float = Field(ge=0, le=1)
    cost_usd: float = Field(default=0.0, ge=0)
    estimated: bool = False
    problem: str | None = None
    checks: str | None = None
    """Why the variant fails the downstream checks (validate, test), when they ran."""


class HumanRequested(EventData):
    round: int = Field(ge=1)
    reason: str
    best: str | None = None
    """The variant ``accept`` would keep."""
    mode: str = "pause"


class HumanAnswered(EventData):
    round: int = Field(ge=1)
    decision: str
    """``accept``, ``edit``, ``reject``, ``retry``, or ``timed_out``."""
    respondent: str | None = None
    comment: str | None = None
    outcome: str
    kept: str | None = None
    note: str | None = None


class EscalationFinished(EventData):
    record_id: str
    outcome: str
    tier_reached: str
    reason: str
    winner: str | None = None
    score: float | None = None
    cost_usd: float = Field(default=0.0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    redactions: dict[str, int] = {}
    human: list[dict[str, Any]] = []
    """The answers at the human tier (:class:`HumanAnswered`'s fields)."""


EVENT_TYPES: dict[str, type[EventData]] = {
    "started": EscalationStarted,
    "variant_scored": VariantScored,
    "human_requested": HumanRequested,
    "human_answered": HumanAnswered,
    "finished": EscalationFinished,
}

register_event_type("plan2flow.escalation.started", EscalationStarted)
register_event_type("plan2flow.escalation.variant_scored", VariantScored, identity=("label",))
register_event_type("plan2flow.escalation.human_requested", HumanRequested, identity=("round",))
register_event_type("plan2flow.escalation.human_answered", HumanAnswered, identity=("round",))
register_event_type("plan2flow.escalation.finished", EscalationFinished, identity=("record_id",))


def publish(bus: EventBus, run: RunContext, task_id: str, name: str, data: dict[str, Any]) -> None:
    """Publish ``plan2flow.escalation.<name>`` of one task; the bus never raises for being down."""
    bus.publish(run.event(f"plan2flow.escalation.{name}", taskid=task_id, attempt=1, **data))
