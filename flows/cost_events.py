"""The event types of costs, budgets and agent calls, registered with the event bus's registry.

=============================== ================================================
type                            data
=============================== ================================================
``plan2flow.cost.charged``      :class:`CostCharged`: one task attempt's compute
``plan2flow.budget.stopped``    :class:`BudgetStopped`: a task not started
``plan2flow.agent.called``      :class:`AgentCalled`: one agent call (random ids)
=============================== ================================================
"""

from __future__ import annotations

from pydantic import Field

from plan2flow.events import EventData, register_event_type


class CostCharged(EventData):
    kind: str = "compute"
    tasktype: str | None = None
    seconds: float = Field(default=0.0, ge=0)
    usd: float = Field(default=0.0, ge=0)


class BudgetStopped(EventData):
    code: str
    scope: str
    name: str
    period: str
    spent_usd: float = Field(ge=0)
    limit_usd: float = Field(ge=0)


class AgentCalled(EventData):
    agent: str
    tasktype: str
    seconds: float = Field(ge=0)
    outcome: str
    """``succeeded``, ``failed`` (the agent reported it) or ``error`` (it raised)."""


register_event_type("plan2flow.cost.charged", CostCharged)
register_event_type("plan2flow.budget.stopped", BudgetStopped)
register_event_type("plan2flow.agent.called", AgentCalled, deterministic=False)
