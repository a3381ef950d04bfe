"""`plan2flow costs report` and `plan2flow budgets ...`: what runs cost, per run, plan and
tenant, and the spending limits that stop them (see docs/costs.md).

Exit statuses: 0 done; 2 a budget, price or date that cannot be (P2F803), a tenant that is not a
DNS label or does not exist; 3 the database cannot be reached; 4 the schema is behind.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app, consoles, say
from .memory_options import TenantOption, memory_database, resolve_tenant

if TYPE_CHECKING:
    from plan2flow.memory.cost_rules import BudgetStatus
    from plan2flow.memory.costs import CostTotal, RunCost

costs_app = typer.Typer(
    help="What runs cost: compute and model tokens, per run, plan and tenant (docs/costs.md).",
    no_args_is_help=True,
)
budgets_app = typer.Typer(
    help="Spending limits per period of a tenant; a plan's own is in its plan (docs/costs.md).",
    no_args_is_help=True,
)
app.add_typer(costs_app, name="costs")
app.add_typer(budgets_app, name="budgets")


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="`table` for people, `json` for tools.")
]


def _print_json(value: object) -> None:
    say(consoles()[0], json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def _status_json(status: BudgetStatus) -> dict[str, Any]:
    return {
        "scope": status.scope,
        "name": status.name,
        "usd": status.usd,
        "period": status.period,
        "since": status.since.isoformat(),
        "spent_usd": status.spent,
        "left_usd": round(status.left, 10),
        "state": status.state,
    }


def _status_line(status: BudgetStatus) -> str:
    ratio = f"{status.ratio:.0%}" if status.usd > 0 else "-"
    return (
        f"{status.scope:<7} {status.name:<24} {status.spent:>12.4f} of {status.usd:>10g} USD "
        f"per {status.period:<6} {ratio:>5}  {status.state}"
    )


def _total_json(total: CostTotal) -> dict[str, Any]:
    return {
        "name": total.name,
        "runs": total.runs,
        "compute_seconds": total.compute_seconds,
        "compute_usd": total.compute_usd,
        "model_usd": total.model_usd,
        "tokens": total.tokens,
        "usd": total.usd,
    }


def _run_json(cost: RunCost) -> dict[str, Any]:
    return {
        "run_id": cost.run_id,
        "plan": cost.plan,
        "state": cost.state,
        "started": None if cost.started is None else cost.started.isoformat(),
        "compute_seconds": cost.compute_seconds,
        "compute_usd": cost.compute_usd,
        "model_usd": cost.model_usd,
        "tokens": cost.tokens,
        "escalations": cost.escalations,
        "usd": cost.usd,
    }


@costs_app.command("report")
def costs_report(
    plan: Annotated[
        str | None, typer.Option("--plan", help="Only this plan's runs.", show_default=False)
    ] = None,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="From the current day, week, month or year (or total), or an ISO date.",
        ),
    ] = "month",
    format: FormatOption = Format.table,
    tenant: TenantOption = None,
) -> None:
    """Cost per run, per plan and for the tenant since a moment, with the budgets' state."""
    from plan2flow.memory.budgets import statuses
    from plan2flow.memory.cost_rules import parse_since
    from plan2flow.memory.costs import by_plan, run_costs, totals
    from plan2flow.memory.db.models import utc_now

    now = utc_now()
    begin = parse_since(since, now)
    name = resolve_tenant(tenant)
    with memory_database() as database:
        runs = run_costs(database, name, begin, plan=plan)
        found = statuses(database, name, plan=plan, now=now)
    plans, total = by_plan(runs), totals(runs, name)
    if format is Format.json:
        _print_json(
            {
                "tenant": name,
                "since": begin.isoformat(),
                "runs": [_run_json(cost) for cost in runs],
                "plans": [_total_json(entry) for entry in plans],
                "total": _total_json(total),
                "budgets": [_status_json(status) for status in found],
            }
        )
        return
    out = consoles()[0]
    say(out, f"costs of tenant {name} since {begin:%Y-%m-%d %H:%M} UTC")
    say(out, "runs:")
    for cost in runs:
        started = "-" if cost.started is None else f"{cost.started:%Y-%m-%d %H:%M}"
        say(
            out,
            f"  {cost.run_id[:12]:<12} {started:<16} {cost.plan:<24} {cost.state:<10} "
            f"{cost.compute_seconds:>10.1f} s {cost.compute_usd:>10.4f} + "
            f"{cost.model_usd:>10.4f} = {cost.usd:>10.4f} USD",
        )
    if not runs:
        say(out, "  none")
    say(out, "plans:")
    for entry in plans:
        say(out, f"  {entry.name:<24} {entry.runs:>5} runs {entry.usd:>12.4f} USD")
    say(
        out,
        f"tenant {name}: {total.runs} runs, {total.compute_seconds:.1f} s compute "
        f"{total.compute_usd:.4f} USD + models {total.model_usd:.4f} USD ({total.tokens} tokens)"
        f" = {total.usd:.4f} USD",
    )
    if found:
        say(out, "budgets:")
        for status in found:
            say(out, "  " + _status_line(status))


PeriodOption = Annotated[
    str,
    typer.Option("--period", help="day, week, month, year (calendar, UTC) or total."),
]


@budgets_app.command("set")
def budgets_set(
    usd: Annotated[float, typer.Option("--usd", help="The limit in US dollars per period.")],
    period: PeriodOption = "month",
    tenant: TenantOption = None,
) -> None:
    """Set (or change) the tenant's budget: runs are refused once it is spent."""
    from plan2flow.memory.budgets import set_budget

    name = resolve_tenant(tenant)
    with memory_database() as database:
        set_budget(database, name, scope="tenant", name="", usd=usd, period=period)
    say(consoles()[0], f"budget of tenant {name}: {usd:g} USD per {period}")


@budgets_app.command("remove")
def budgets_remove(tenant: TenantOption = None) -> None:
    """Remove the tenant's budget."""
    from plan2flow.memory.budgets import remove_budget

    name = resolve_tenant(tenant)
    with memory_database() as database:
        removed = remove_budget(database, name, scope="tenant", name="")
    say(consoles()[0], f"budget of tenant {name} " + ("removed" if removed else "was not set"))


@budgets_app.command("list")
def budgets_list(format: FormatOption = Format.table, tenant: TenantOption = None) -> None:
    """The tenant's budget and its plans', with what is spent of each this period."""
    from plan2flow.memory.budgets import statuses

    name = resolve_tenant(tenant)
    with memory_database() as database:
        found = statuses(database, name)
    if format is Format.json:
        _print_json([_status_json(status) for status in found])
        return
    for status in found:
        say(consoles()[0], _status_line(status))
    if not found:
        say(consoles()[1], f"no budgets for tenant {name}")
