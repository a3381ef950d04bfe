"""A plan's SLOs as Prometheus rules: recording rules of the error ratio over the windows the
alerts need, and multi-window, multi-burn-rate alerts (the SRE workbook's, as Sloth and Pyrra
generate them); and the report of compliance and error budget left.

An SLO here is ``objective`` (0.99) of "good" runs over ``window`` (28d). Two kinds:
``success_ratio`` (bad: a run ended failed or cancelled) and ``run_duration`` (bad: a run took
longer than ``seconds``, read from the run duration histogram's bucket of that bound). The
alerts page when the budget burns 14.4 times too fast over 1 h (and still over 5 min) or 6 times
over 6 h (and 30 min), and open a ticket at 3 times over 1 d (and 2 h) or once over 3 d (and 6 h).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SloError
from .metrics import RUN_SECONDS

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BURN_RATES: tuple[tuple[str, float, str, str], ...] = (
    ("page", 14.4, "1h", "5m"),
    ("page", 6.0, "6h", "30m"),
    ("ticket", 3.0, "1d", "2h"),
    ("ticket", 1.0, "3d", "6h"),
)
"""Severity, burn rate, long window, short window (for a 30-day budget; the SRE workbook)."""


@dataclasses.dataclass(frozen=True)
class Objective:
    """One SLO of one plan."""

    plan: str
    sli: str  # "success" or "duration"
    objective: float
    window: str
    seconds: float | None = None

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    def bad_ratio(self, window: str) -> str:
        """PromQL: the share of bad runs over `window`."""
        selector = f'plan="{self.plan}"'
        if self.sli == "success":
            bad = f'plan2flow_runs_total{{{selector},state=~"failed|cancelled"}}'
            total = f"plan2flow_runs_total{{{selector}}}"
            return (
                f"sum by (plan) (increase({bad}[{window}]))\n/\n"
                f"sum by (plan) (increase({total}[{window}]))"
            )
        le = _bucket(self.seconds)
        fast = f'plan2flow_run_duration_seconds_bucket{{{selector},le="{le}"}}'
        total = f"plan2flow_run_duration_seconds_count{{{selector}}}"
        return (
            f"1 - (\n  sum by (plan) (increase({fast}[{window}]))\n  /\n"
            f"  sum by (plan) (increase({total}[{window}]))\n)"
        )

    def record(self, window: str) -> str:
        return f"plan2flow:slo_{self.sli}_errors:ratio_rate{window}"

    def recorded(self, window: str) -> str:
        """The recorded series of this plan (all plans share the rule's name)."""
        return f'{self.record(window)}{{plan="{self.plan}"}}'


def _bucket(seconds: float | None) -> str:
    if seconds not in RUN_SECONDS:
        raise SloError(
            f"run_duration.seconds {seconds:g} is not a bucket of the run duration histogram; "
            f"choose one of {', '.join(f'{b:g}' for b in RUN_SECONDS)}"
        )
    return f"{float(seconds):g}" if float(seconds) != int(seconds) else f"{int(seconds)}.0"


def objectives(plan: str, slo: Any) -> list[Objective]:
    """The objectives of a plan's ``slo:`` section (a compiled plan's ``slo``)."""
    found = []
    if slo.success_ratio is not None:
        found.append(Objective(plan, "success", slo.success_ratio, slo.window))
    if slo.run_duration is not None:
        duration = slo.run_duration
        _bucket(duration.seconds)
        found.append(Objective(plan, "duration", duration.objective, slo.window, duration.seconds))
    return found


def rule_groups(objectives: Sequence[Objective]) -> dict[str, Any]:
    """A Prometheus rule file (as data) for `objectives`: one group per plan and SLI."""
    groups = []
    for slo in objectives:
        windows = dict.fromkeys((*WINDOWS, slo.window))
        rules: list[dict[str, Any]] = [
            {"record": slo.record(w), "expr": slo.bad_ratio(w), "labels": _labels(slo)}
            for w in windows
        ]
        for severity in ("page", "ticket"):
            conditions = [
                f"(\n  {slo.recorded(long)} > ({rate:g} * {slo.budget:.6g})\n  and\n"
                f"  {slo.recorded(short)} > ({rate:g} * {slo.budget:.6g})\n)"
                for level, rate, long, short in BURN_RATES
                if level == severity
            ]
            rules.append(
                {
                    "alert": f"Plan2flowSlo{slo.sli.capitalize()}BudgetBurn",
                    "expr": "\nor\n".join(conditions),
                    "labels": {**_labels(slo), "severity": severity},
                    "annotations": {
                        "summary": f"plan {slo.plan}: the {slo.sli} SLO "
                        f"({slo.objective:.4g} over {slo.window}) burns its error budget "
                        + ("too fast to wait" if severity == "page" else "faster than it lasts"),
                    },
                }
            )
        groups.append({"name": f"plan2flow-slo-{slo.plan}-{slo.sli}", "rules": rules})
    return {"groups": groups}


def rules_yaml(objectives: Sequence[Objective]) -> str:
    """The rule file's text; expressions as YAML literal blocks, as one would write them."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(rule_groups(objectives), Dumper=Dumper, sort_keys=False, width=100)


def _labels(slo: Objective) -> dict[str, str]:
    return {"slo": slo.sli, "objective": f"{slo.objective:g}", "window": slo.window}


@dataclasses.dataclass(frozen=True)
class Compliance:
    """How an objective stands over its window."""

    objective: Objective
    bad_ratio: float | None
    """None: no run in the window."""

    @property
    def good_ratio(self) -> float | None:
        return None if self.bad_ratio is None else 1.0 - self.bad_ratio

    @property
    def budget_left(self) -> float | None:
        """The share of the error budget not spent (negative: overspent)."""
        if self.bad_ratio is None:
            return None
        return 1.0 - self.bad_ratio / self.objective.budget

    @property
    def met(self) -> bool | None:
        return None if self.bad_ratio is None else self.bad_ratio <= self.objective.budget


def compliance(slo: Objective, vector: Sequence[Mapping[str, Any]]) -> Compliance:
    """From Prometheus's answer to ``slo.bad_ratio(slo.window)`` (an instant vector)."""
    values = [float(sample["value"][1]) for sample in vector]
    found = [v for v in values if v == v]  # NaN: no run in the window
    return Compliance(slo, found[0] if found else None)
