"""The arithmetic of costs and budgets, without I/O: what compute costs at the configured price,
where a budget's period begins, and how much of a budget is spent.

Periods are calendar periods in UTC, like a cloud bill's: ``day``, ``week`` (from Monday),
``month``, ``year``; ``total`` never resets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Mapping

from .errors import BudgetError

COMPUTE_PRICE_ENV = "PLAN2FLOW_COMPUTE_PRICE_PER_HOUR"
"""US dollars per hour of a task's compute (wall seconds of its attempts); default 0."""
PERIODS = ("day", "week", "month", "year", "total")
DEFAULT_PERIOD = "month"
SCOPES = ("tenant", "plan")
WARN_RATIO = 0.8
"""The share of a budget at which ``costs report``, ``budgets list`` and the alert warn."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def compute_price(environ: Mapping[str, str] | None = None) -> float:
    """The compute price per hour from ``PLAN2FLOW_COMPUTE_PRICE_PER_HOUR`` (0 when unset).

    >>> compute_price({"PLAN2FLOW_COMPUTE_PRICE_PER_HOUR": "0.36"})
    0.36
    """
    env = os.environ if environ is None else environ
    text = env.get(COMPUTE_PRICE_ENV, "").strip()
    if not text:
        return 0.0
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price < 0:
        raise BudgetError(
            f"P2F803 {COMPUTE_PRICE_ENV}={text!r} is not a price: give US dollars per hour of "
            "compute as a number of 0 or more, such as 0.36"
        )
    return price


def compute_usd(seconds: float, price_per_hour: float) -> float:
    """What ``seconds`` of compute cost at ``price_per_hour``.

    >>> compute_usd(90, 0.36)
    0.009
    """
    return round(max(seconds, 0.0) * price_per_hour / 3600, 10)


def check_period(period: str) -> str:
    """``period`` when it is one of :data:`PERIODS`, else :class:`BudgetError`."""
    if period not in PERIODS:
        raise BudgetError(
            f"P2F803 {period!r} is not a budget period: use one of {', '.join(PERIODS)}"
        )
    return period


def check_usd(usd: float) -> float:
    """``usd`` when it is a finite amount of 0 or more, else :class:`BudgetError`."""
    if not math.isfinite(usd) or usd < 0:
        raise BudgetError(f"P2F803 {usd!r} is not a budget: give US dollars, 0 or more")
    return usd


def period_start(period: str, now: dt.datetime) -> dt.datetime:
    """Where the period that contains ``now`` began (UTC); the epoch for ``total``.

    >>> now = dt.datetime(2026, 11, 30, 15, 4, tzinfo=dt.UTC)
    >>> [period_start(p, now).isoformat()[:10] for p in PERIODS]
    ['2026-11-30', '2026-11-30', '2026-11-01', '2026-01-01', '1970-01-01']
    """
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    check_period(period)
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    return _EPOCH


@dataclasses.dataclass(frozen=True)
class BudgetStatus:
    """One budget and what is spent of it in the current period."""

    scope: str
    name: str
    """The plan's name; the tenant's for a tenant budget."""
    tenant: str
    usd: float
    period: str
    since: dt.datetime
    spent: float

    @property
    def ratio(self) -> float:
        """Spent over limit; a budget of 0 is spent from the start."""
        if self.usd <= 0:
            return math.inf if self.spent > 0 else 1.0
        return self.spent / self.usd

    @property
    def left(self) -> float:
        return max(self.usd - self.spent, 0.0)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.usd - 1e-12

    @property
    def state(self) -> str:
        """``ok``, ``warn`` (at :data:`WARN_RATIO` or more) or ``spent``."""
        if self.exhausted:
            return "spent"
        return "warn" if self.ratio >= WARN_RATIO else "ok"

    def describe(self) -> str:
        what = f"plan {self.name!r}" if self.scope == "plan" else f"tenant {self.tenant!r}"
        period = {"total": "in total", "day": "today"}.get(self.period, f"this {self.period}")
        return f"{what} has spent {self.spent:.4f} of its {self.usd:g} USD budget {period}"


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """Where a report begins: a period's name (its current period), or an ISO date or moment
    (UTC unless it names its offset).

    >>> now = dt.datetime(2026, 11, 30, 15, 4, tzinfo=dt.UTC)
    >>> parse_since("month", now).isoformat(), parse_since("2026-11-02", now).isoformat()
    ('2026-11-01T00:00:00+00:00', '2026-11-02T00:00:00+00:00')
    """
    value = text.strip()
    if value in PERIODS:
        return period_start(value, now)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BudgetError(
            f"P2F803 --since {text!r} is neither a period ({', '.join(PERIODS)}) nor an ISO "
            "date such as 2026-11-01"
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
