"""Budgets as Prometheus gauges, read from project memory at each scrape: the limit and what is
spent of it this period, for every tenant's budget and every plan's.

Labels: ``tenant``, ``scope`` (``tenant`` or ``plan``), ``plan`` (empty for a tenant's budget)
and ``period``: bounded by the budgets that exist. The alert rules divide spent by limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import col

from plan2flow.memory.budgets import statuses
from plan2flow.memory.cost_rules import BudgetStatus
from plan2flow.memory.db.engine import Database
from plan2flow.memory.db.models import Tenant
from plan2flow.memory.errors import BudgetError, MemoryStoreError

LOGGER = logging.getLogger("plan2flow.observability")
LABELS = ["tenant", "scope", "plan", "period"]


def all_statuses(database: Database) -> list[BudgetStatus]:
    """Every tenant's budgets with what is spent of each this period; a tenant whose budgets
    cannot be read (a stored row no longer valid) is left out of this scrape and logged, so
    that it does not take the other tenants' gauges with it."""
    with database.connect() as connection:
        names = sa.select(col(Tenant.name)).order_by(col(Tenant.name))
        tenants = connection.execute(names).scalars().all()
    found: list[BudgetStatus] = []
    for tenant in tenants:
        try:
            found.extend(statuses(database, str(tenant)))
        except BudgetError as error:
            LOGGER.warning("plan2flow: the budgets of tenant %r are left out: %s", tenant, error)
    return found


def families(found: Sequence[BudgetStatus]) -> list[GaugeMetricFamily]:
    """The two gauges of ``found``."""
    limit = GaugeMetricFamily(
        "plan2flow_budget_limit_usd", "A budget's limit for its period (USD)", labels=LABELS
    )
    spent = GaugeMetricFamily(
        "plan2flow_budget_spent_usd",
        "What is spent of a budget in its current period (USD): compute and models",
        labels=LABELS,
    )
    for status in found:
        labels = [
            status.tenant,
            status.scope,
            status.name if status.scope == "plan" else "",
            status.period,
        ]
        limit.add_metric(labels, status.usd)
        spent.add_metric(labels, status.spent)
    return [limit, spent]


class BudgetCollector(Collector):
    """The budget gauges, from ``read`` at each scrape; a database that cannot be read leaves
    them empty for that scrape (logged), the next one tries again."""

    def __init__(self, read: Callable[[], Sequence[BudgetStatus]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Any]:
        try:
            found = self.read()
        except (MemoryStoreError, sa.exc.SQLAlchemyError) as error:
            LOGGER.warning("plan2flow: budgets are unavailable for this scrape: %s", error)
            found = []
        yield from families(found)

    def describe(self) -> Iterable[Any]:
        return families([])


def register_budgets(registry: CollectorRegistry, database: Database) -> BudgetCollector:
    """Add the budget gauges of ``database`` to ``registry``."""
    collector = BudgetCollector(lambda: all_statuses(database))
    registry.register(collector)
    return collector
