"""A plan's service-level objectives: what share of its runs must complete, and how fast.

The observability part turns them into Prometheus recording rules and multi-window,
multi-burn-rate alerts (``plan2flow slo rules``); the TaskGraph does not record them, so changing
an objective never changes a graph hash."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from .base import Model

Window = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[dh]$")]


class RunDurationObjective(Model):
    """``objective`` of the runs end within ``seconds`` (a bucket of the run duration histogram,
    e.g. 60, 300, 600, 1800, 3600)."""

    seconds: Annotated[float, Field(gt=0)]
    objective: Annotated[float, Field(gt=0, lt=1)] = 0.95


class Slo(Model):
    """``success_ratio``: the share of runs that must complete (0.99: 1 % may fail or be
    cancelled) over ``window`` (``28d``, ``7d``, ``24h``)."""

    success_ratio: Annotated[float, Field(gt=0, lt=1)] | None = None
    run_duration: RunDurationObjective | None = None
    window: Window = "28d"
