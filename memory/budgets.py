"""Budgets: spending limits per period, of a tenant and of each plan, and the check that stops
spending when one is spent.

A tenant's budget is set with ``plan2flow budgets set``; a plan's comes from its plan's
``budget:`` section and is written here by the runtime when a run of the plan starts (a plan
that no longer declares one has its row removed), so the command line and ``metrics serve``
see it too. Setting and removing a budget are entries of the tenant's audit journal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from . import audit
from .cost_rules import BudgetStatus, check_period, check_usd, period_start
from .costs import spent_usd
from .db.engine import Database
from .db.models import BudgetRow, utc_now
from .errors import BudgetError, BudgetSpent

REFUSED = "P2F801"
"""A run refused before it starts."""
STOPPED = "P2F802"
"""A task, or a model call, of a running run not started."""
UPSERT_ATTEMPTS = 3
"""Runs of one plan that start together may each create its budget's row: the losers retry."""


def set_budget(
    database: Database,
    tenant: str,
    *,
    scope: str,
    name: str,
    usd: float,
    period: str,
    actor: str | None = None,
) -> BudgetRow:
    """Create or change the budget of ``tenant`` (``scope`` tenant) or of its plan ``name``."""
    check_usd(usd)
    check_period(period)
    if scope not in ("tenant", "plan"):
        raise BudgetError(f"P2F803 {scope!r} is not a budget scope: use tenant or plan")
    key = "" if scope == "tenant" else name
    who = actor or audit.actor()
    for attempt in range(1, UPSERT_ATTEMPTS + 1):
        try:
            return _upsert(database, tenant, scope, key, usd, period, who)
        except sa.exc.IntegrityError:  # created by another process meanwhile: change that one
            if attempt == UPSERT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _upsert(
    database: Database, tenant: str, scope: str, key: str, usd: float, period: str, who: str
) -> BudgetRow:
    with database.session(tenant) as session:
        row = _row(session, tenant, scope, key)
        if row is not None and (row.usd, row.period) == (usd, period):
            return row
        if row is None:
            row = BudgetRow(tenant=tenant, scope=scope, name=key, usd=usd, period=period)
        row.usd, row.period, row.actor, row.updated = usd, period, who, utc_now()
        session.add(row)
        session.flush()
        detail = {"scope": scope, "name": key, "usd": usd, "period": period}
        audit.append(session, tenant, who, "budget.set", key or tenant, detail)
        session.refresh(row)
        session.expunge(row)
        return row


def remove_budget(
    database: Database, tenant: str, *, scope: str, name: str, actor: str | None = None
) -> bool:
    """Remove a budget; False when there was none."""
    key = "" if scope == "tenant" else name
    with database.session(tenant) as session:
        row = _row(session, tenant, scope, key)
        if row is None:
            return False
        session.delete(row)
        detail = {"scope": scope, "name": key}
        audit.append(
            session, tenant, actor or audit.actor(), "budget.removed", key or tenant, detail
        )
        return True


def _row(session: Session, tenant: str, scope: str, name: str) -> BudgetRow | None:
    statement = select(BudgetRow).where(
        col(BudgetRow.tenant) == tenant, col(BudgetRow.scope) == scope, col(BudgetRow.name) == name
    )
    return session.exec(statement).first()


def statuses(
    database: Database,
    tenant: str,
    *,
    plan: str | None = None,
    now: dt.datetime | None = None,
) -> list[BudgetStatus]:
    """The tenant's budgets with what is spent of each this period: the tenant's first, then
    each plan's (only ``plan``'s, when given)."""
    moment = now or utc_now()
    with database.session(tenant) as session:
        statement = select(BudgetRow).where(col(BudgetRow.tenant) == tenant)
        rows = [
            row
            for row in session.exec(statement).all()
            if row.scope == "tenant" or plan is None or row.name == plan
        ]
        found = []
        for row in sorted(rows, key=lambda r: (r.scope != "tenant", r.name)):
            since = period_start(row.period, moment)
            of_plan = row.name if row.scope == "plan" else None
            found.append(
                BudgetStatus(
                    scope=row.scope,
                    name=row.name or tenant,
                    tenant=tenant,
                    usd=row.usd,
                    period=row.period,
                    since=since,
                    spent=spent_usd(session, tenant, since, plan=of_plan),
                )
            )
    return found


def first_spent(found: list[BudgetStatus]) -> BudgetStatus | None:
    """The first budget of ``found`` that is spent (the tenant's before a plan's)."""
    return next((status for status in found if status.exhausted), None)


def spent_error(status: BudgetStatus, *, code: str, what: str) -> BudgetSpent:
    """The error that refuses ``what`` (a run, a task, a model call) for a spent budget."""
    hint = (
        f"raise it with `plan2flow budgets set --tenant {status.tenant} --usd N`"
        if status.scope == "tenant"
        else f"raise `budget.usd` in plan {status.name!r} and compile it again"
    )
    reset = "" if status.period == "total" else f", or wait for the next {status.period}"
    return BudgetSpent(
        f"{code} {what} refused: {status.describe()}; hint: {hint}{reset} "
        f"(see `plan2flow costs report --tenant {status.tenant}`)",
        code=code,
        scope=status.scope,
        name=status.name,
        spent=status.spent,
        limit=status.usd,
    )


def check(
    database: Database, tenant: str, plan: str, *, code: str, what: str
) -> list[BudgetStatus]:
    """Raise :class:`BudgetSpent` when the tenant's or ``plan``'s budget is spent; else the
    budgets that apply, with what is left of each."""
    found = statuses(database, tenant, plan=plan)
    spent = first_spent(found)
    if spent is not None:
        raise spent_error(spent, code=code, what=what)
    return found


def admit_run(
    database: Database, tenant: str, plan: str, declared: Mapping[str, Any] | None
) -> list[BudgetStatus]:
    """Record the budget ``plan`` declares (or remove the one it no longer declares), then
    refuse a run of it when a budget is spent (``P2F801``); else the budgets that apply."""
    if declared is not None:
        set_budget(
            database,
            tenant,
            scope="plan",
            name=plan,
            usd=float(declared["usd"]),
            period=str(declared["period"]),
        )
    else:
        remove_budget(database, tenant, scope="plan", name=plan)
    return check(database, tenant, plan, code=REFUSED, what=f"a run of plan {plan!r}")


def remaining(found: list[BudgetStatus]) -> float | None:
    """The least left of ``found`` (None: no budget applies)."""
    return min((status.left for status in found), default=None)
