"""The cost ledger: what runs spend, per run, plan and tenant.

Two sources, both tenant tables: ``costs`` holds the compute seconds of every task attempt that
ran, priced when it ran (``PLAN2FLOW_COMPUTE_PRICE_PER_HOUR``); ``escalations`` holds the model
tokens and their cost at each tier's price. A run's cost is the sum of both for its run id, and
what a plan or tenant spent in a period is the sum over the rows created in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from .db.engine import Database
from .db.models import CostEntry, EscalationRow
from .db.models import Run as RunRow


@dataclasses.dataclass(frozen=True)
class RunCost:
    """What one run spent: compute (seconds and dollars) and models (tokens and dollars)."""

    run_id: str
    plan: str
    state: str
    started: dt.datetime | None
    compute_seconds: float = 0.0
    compute_usd: float = 0.0
    model_usd: float = 0.0
    tokens: int = 0
    escalations: int = 0

    @property
    def usd(self) -> float:
        return round(self.compute_usd + self.model_usd, 10)


@dataclasses.dataclass(frozen=True)
class CostTotal:
    """The sum over runs: of one plan (``name``) or of the tenant."""

    name: str
    runs: int
    compute_seconds: float
    compute_usd: float
    model_usd: float
    tokens: int

    @property
    def usd(self) -> float:
        return round(self.compute_usd + self.model_usd, 10)


def charge_compute(
    database: Database,
    tenant: str,
    *,
    plan: str,
    run_id: str,
    task_id: str,
    attempt: int,
    seconds: float,
    usd: float,
) -> None:
    """Write one ledger row: the compute of one task attempt."""
    with database.session(tenant) as session:
        session.add(
            CostEntry(
                tenant=tenant,
                plan=plan,
                run_id=run_id,
                task_id=task_id,
                attempt=max(attempt, 1),
                seconds=round(max(seconds, 0.0), 6),
                usd=usd,
            )
        )


def spent_usd(
    session: Session, tenant: str, since: dt.datetime, *, plan: str | None = None
) -> float:
    """What ``tenant`` (or its ``plan``) spent from ``since`` on: compute and models, in one
    statement (a task's budget check runs it)."""
    compute: sa.Select[Any] = sa.select(col(CostEntry.usd).label("usd")).where(
        col(CostEntry.tenant) == tenant, col(CostEntry.created) >= since
    )
    models: sa.Select[Any] = sa.select(col(EscalationRow.cost_usd).label("usd")).where(
        col(EscalationRow.tenant) == tenant, col(EscalationRow.created) >= since
    )
    if plan is not None:
        compute = compute.where(col(CostEntry.plan) == plan)
        models = models.where(col(EscalationRow.plan) == plan)
    both = sa.union_all(compute, models).subquery()
    total = session.execute(sa.select(sa.func.coalesce(sa.func.sum(both.c.usd), 0.0))).scalar()
    return round(float(total or 0.0), 10)


def run_costs(
    database: Database, tenant: str, since: dt.datetime, *, plan: str | None = None
) -> list[RunCost]:
    """Every run of ``tenant`` (of one ``plan``) started or charged from ``since`` on, with
    what it spent, oldest first."""
    with database.session(tenant) as session:
        compute = _grouped(
            session,
            sa.select(
                col(CostEntry.plan),
                col(CostEntry.run_id),
                func.sum(col(CostEntry.seconds)),
                func.sum(col(CostEntry.usd)),
                func.count(),
                func.min(col(CostEntry.created)),
            ),
            CostEntry,
            tenant,
            since,
            plan,
        )
        models = _grouped(
            session,
            sa.select(
                col(EscalationRow.plan),
                col(EscalationRow.run_id),
                func.sum(col(EscalationRow.prompt_tokens) + col(EscalationRow.completion_tokens)),
                func.sum(col(EscalationRow.cost_usd)),
                func.count(),
                func.min(col(EscalationRow.created)),
            ),
            EscalationRow,
            tenant,
            since,
            plan,
        )
        started = select(RunRow).where(col(RunRow.tenant) == tenant, col(RunRow.started) >= since)
        if plan is not None:
            started = started.where(col(RunRow.plan) == plan)
        rows = {str(row.id): row for row in session.exec(started).all()}
        known = _uuids(key[1] for key in (*compute, *models) if key[1] not in rows)
        if known:
            found = select(RunRow).where(col(RunRow.tenant) == tenant, col(RunRow.id).in_(known))
            rows.update({str(row.id): row for row in session.exec(found).all()})
    return _merge(rows, compute, models)


Group = dict[tuple[str, str], tuple[float, float, int, dt.datetime]]


def _grouped(
    session: Session,
    # Any: SQLAlchemy 2.0 spells this Select[tuple[str, ...]] and 2.1 Select[str, ...], and
    # the ranges in pyproject.toml allow both (`make test-latest` type-checks 2.1).
    statement: Any,
    table: type[CostEntry] | type[EscalationRow],
    tenant: str,
    since: dt.datetime,
    plan: str | None,
) -> Group:
    statement = statement.where(table.tenant == tenant, table.created >= since)
    if plan is not None:
        statement = statement.where(table.plan == plan)
    statement = statement.group_by(table.plan, table.run_id)
    return {
        (str(p), str(r)): (float(a or 0), float(b or 0), int(n), first)
        for p, r, a, b, n, first in session.execute(statement).all()
    }


def _uuids(values: Iterable[str]) -> list[uuid.UUID]:
    found = []
    for value in set(values):
        try:
            found.append(uuid.UUID(value))
        except ValueError:
            continue  # `local` and `local-…` runs outside Prefect have no row
    return found


def _merge(rows: dict[str, RunRow], compute: Group, models: Group) -> list[RunCost]:
    keys = {(row.plan, run_id) for run_id, row in rows.items()} | set(compute) | set(models)
    costs = []
    for plan, run_id in keys:
        row = rows.get(run_id)
        seconds, compute_usd, _, first_charge = compute.get((plan, run_id), (0.0, 0.0, 0, None))
        tokens, model_usd, escalations, first_model = models.get(
            (plan, run_id), (0.0, 0.0, 0, None)
        )
        started = (
            row.started
            if row is not None
            else min((t for t in (first_charge, first_model) if t is not None), default=None)
        )
        costs.append(
            RunCost(
                run_id=run_id,
                plan=plan,
                state=row.state if row is not None else "-",
                started=_aware(started),
                compute_seconds=round(seconds, 6),
                compute_usd=round(compute_usd, 10),
                model_usd=round(model_usd, 10),
                tokens=int(tokens),
                escalations=escalations,
            )
        )
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return sorted(costs, key=lambda c: (c.started or epoch, c.plan, c.run_id))


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """Aggregates bypass the column type: SQLite's ``min`` hands back naive text as UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def totals(costs: Sequence[RunCost], name: str) -> CostTotal:
    """The sum of ``costs`` under ``name``.

    >>> totals([RunCost("r1", "etl", "completed", None, 60, 0.01, 0.5, 900, 1)], "etl").usd
    0.51
    """
    return CostTotal(
        name=name,
        runs=len(costs),
        compute_seconds=round(sum(c.compute_seconds for c in costs), 6),
        compute_usd=round(sum(c.compute_usd for c in costs), 10),
        model_usd=round(sum(c.model_usd for c in costs), 10),
        tokens=sum(c.tokens for c in costs),
    )


def by_plan(costs: Sequence[RunCost]) -> list[CostTotal]:
    """One total per plan, by name."""
    plans: dict[str, list[RunCost]] = {}
    for cost in costs:
        plans.setdefault(cost.plan, []).append(cost)
    return [totals(runs, name) for name, runs in sorted(plans.items())]
