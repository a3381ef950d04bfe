"""A plan's budget: what its runs may spend per period, compute and model tokens together.

The runtime refuses a run of the plan once the period's budget is spent, and stops starting its
tasks and model calls when a run spends it (docs/costs.md). The TaskGraph records it under
``settings.budget``, so the runtime that runs the graph knows it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Model

Period = Literal["day", "week", "month", "year", "total"]


class Budget(Model):
    """``usd`` US dollars per calendar ``period`` in UTC (``total``: never resets)."""

    usd: Annotated[float, Field(ge=0, le=1_000_000_000)]
    period: Period = "month"
