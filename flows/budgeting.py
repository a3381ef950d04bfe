"""Costs and budgets at run time: the hard stop and the compute ledger.

* When a run starts, its plan's budget (``settings.budget`` of its graph) is written to project
  memory, and the run is refused (``P2F801``) when the plan's or the tenant's budget for the
  period is spent.
* Before each task starts, when a budget applies, the same check runs again: a spent budget
  ends the task in the state ``BudgetStopped`` (``P2F802``, never retried) and its downstream
  tasks are not run. A task that escalates may spend on models at most what is left of the
  budgets when it starts (its policy's ``budget_usd`` is lowered to that).
* After each attempt of a task that ran (not a cached task, an approval or a join point), its
  wall seconds are charged at the run's compute price to the ``costs`` ledger (when there is a
  price or a budget: free, unlimited compute is not written) and published as
  ``plan2flow.cost.charged``.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import sqlalchemy as sa

from plan2flow.memory import budgets
from plan2flow.memory.cost_rules import compute_usd
from plan2flow.memory.costs import charge_compute
from plan2flow.memory.errors import BudgetSpent, MemoryStoreError

from . import cost_events  # noqa: F401  (registers the event types)
from .graph import Graph, GraphTask
from .memory_bridge import artifact_store
from .publishing import emit
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")
BUDGET_STOPPED = "BudgetStopped"
"""The final state of a task not started because a budget is spent."""
UNCHARGED_TYPES = frozenset({"approval", "noop"})
"""Task types whose time is waiting, not compute."""


def before_run(graph: Graph, place: RunPlace) -> RunPlace:
    """Record the plan's budget, refuse the run when a budget is spent (:class:`BudgetSpent`,
    ``P2F801``), and return the place its tasks get (whether a budget applies)."""
    database = artifact_store(place.tenant).database
    found = budgets.admit_run(database, place.tenant, graph.name, graph.budget)
    return dataclasses.replace(place, budgeted=bool(found))


def before_task(place: RunPlace, spec: GraphTask) -> tuple[GraphTask, BudgetSpent | None]:
    """The task as it may run (its model spending capped by what is left), or the error that
    stops it; nothing is read when no budget applies to the run."""
    if not place.budgeted:
        return spec, None
    found = budgets.statuses(artifact_store(place.tenant).database, place.tenant, plan=place.plan)
    spent = budgets.first_spent(found)
    if spent is not None:
        error = budgets.spent_error(spent, code=budgets.STOPPED, what=f"task {spec.id!r}")
        emit(
            place,
            lambda run: run.event(
                "plan2flow.budget.stopped",
                taskid=spec.id,
                attempt=1,
                code=error.code,
                scope=spent.scope,
                name=spent.name,
                period=spent.period,
                spent_usd=spent.spent,
                limit_usd=spent.usd,
            ),
        )
        return spec, error
    left = budgets.remaining(found)
    if spec.escalation is not None and left is not None:
        cap = min(float(spec.escalation.get("budget_usd") or 0.0), left)
        spec = dataclasses.replace(spec, escalation={**spec.escalation, "budget_usd": cap})
    return spec, None


def charge(place: RunPlace, spec: GraphTask, attempt: int, began: float) -> None:
    """Charge one attempt's compute from ``began`` (``time.monotonic()``) until now; a ledger
    that cannot be written is logged, never fails a task that did its work."""
    if spec.type in UNCHARGED_TYPES:
        return
    seconds = max(time.monotonic() - began, 0.0)
    usd = compute_usd(seconds, place.compute_price)
    try:
        if place.compute_price > 0 or place.budgeted:  # else free and unlimited: no write
            charge_compute(
                artifact_store(place.tenant).database,
                place.tenant,
                plan=place.plan,
                run_id=place.flow_run_id,
                task_id=spec.id,
                attempt=attempt,
                seconds=seconds,
                usd=usd,
            )
    except (MemoryStoreError, sa.exc.SQLAlchemyError):
        LOGGER.exception("plan2flow: the compute of task %s was not charged", spec.id)
    emit(
        place,
        lambda run: run.event(
            "plan2flow.cost.charged",
            taskid=spec.id,
            attempt=attempt,
            kind="compute",
            tasktype=spec.type,
            seconds=round(seconds, 6),
            usd=usd,
        ),
    )
