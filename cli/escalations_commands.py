"""`plan2flow escalations ...`: read the escalation records in project memory (see
docs/escalation.md).

`list` shows one line per escalation, newest last; `show` one escalation with every variant's
score breakdown; `stats` how each tier and model fares across runs (the A/B view of the
competing variants). Each reads one tenant's records (`--tenant`). Exit statuses: 0 done; 1
`show` found no record with that id; 2 a record that cannot be read, a tenant that is not a DNS
label or does not exist; 3 the database cannot be reached; 4 the schema is behind.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from .app import app, consoles, say
from .memory_options import TenantOption, memory_database, resolve_tenant

if TYPE_CHECKING:
    from plan2flow.escalation import EscalationRecord

escalations_app = typer.Typer(
    help="The escalation records: what escalated, to which tier, which variant won and what it "
    "cost (see docs/escalation.md).",
    no_args_is_help=True,
)
app.add_typer(escalations_app, name="escalations")


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="`text` for people, `json` for tools.")
]


def _print_json(value: object) -> None:
    say(consoles()[0], json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@escalations_app.command("list")
def escalations_list(
    plan: Annotated[
        str | None, typer.Option("--plan", help="Only this plan's.", show_default=False)
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Only this flow run's (its id).", show_default=False),
    ] = None,
    format: FormatOption = Format.text,
    tenant: TenantOption = None,
) -> None:
    """Every escalation, oldest first: task, tier reached, outcome, winner, cost."""
    from plan2flow.escalation import records

    with memory_database() as database:
        found = list(records(database, resolve_tenant(tenant), plan=plan, run=run))
    if format is Format.json:
        _print_json([record.model_dump(mode="json", exclude={"variants"}) for record in found])
        return
    out = consoles()[0]
    for record in found:
        winner = f"{record.winner} {_score(record.winner_score)}" if record.winner else "-"
        say(
            out,
            f"{record.short_id}  {record.time:%Y-%m-%d %H:%M:%S}  {record.plan}  {record.task_id}  "
            f"{record.outcome} at {record.tier_reached}  winner {winner}  "
            f"{len(record.variants)} variants  {record.cost_usd:.6f} USD",
        )
    if not found:
        say(consoles()[1], "no escalations")


def _show_text(record: EscalationRecord) -> None:
    out = consoles()[0]
    lines = [
        f"escalation {record.short_id}  {record.time:%Y-%m-%d %H:%M:%S %Z}",
        f"task        {record.task_id} (plan {record.plan}, run {record.flow_run_id or '-'})",
        f"outcome     {record.outcome} at the {record.tier_reached} tier",
        f"why         {record.reason}",
        f"threshold   {record.threshold}",
        f"winner      {record.winner or '-'} ({record.model or '-'}) {_score(record.winner_score)}",
        f"cost        {record.cost_usd:.6f} USD, {record.prompt_tokens} prompt + "
        f"{record.completion_tokens} completion tokens",
        "redactions  "
        + (", ".join(f"{name} {n}" for name, n in record.redactions.items()) or "none"),
        "variants:",
    ]
    for variant in record.variants:
        values = ", ".join(f"{name} {_score(value)}" for name, value in variant.values.items())
        tests = (
            f"{variant.tests_passed}/{variant.tests_total} tests"
            if variant.tests_total
            else "no tests"
        )
        estimated = " (estimated)" if variant.estimated else ""
        lines.append(
            f"  {variant.label:<12} {variant.model or 'templates':<16} score "
            f"{_score(variant.score)}  {tests}  {variant.cost_usd:.6f} USD{estimated}  "
            f"{variant.attempts} attempt(s)"
        )
        if values:
            lines.append(f"    {values}")
        if variant.problem:
            lines.append(f"    problem: {variant.problem}")
        if variant.checks:
            first = variant.checks.splitlines()[:3]
            lines.append("    downstream checks: " + " | ".join(first))
    say(out, "\n".join(lines))


@escalations_app.command("show")
def escalations_show(
    record_id: Annotated[str, typer.Argument(help="The record's id, or a unique prefix.")],
    format: FormatOption = Format.text,
    tenant: TenantOption = None,
) -> None:
    """One escalation: why it reached its tier, and each variant's score breakdown."""
    from plan2flow.escalation import find

    with memory_database() as database:
        record = find(database, resolve_tenant(tenant), record_id)
    if format is Format.json:
        _print_json(record.model_dump(mode="json"))
    else:
        _show_text(record)


@escalations_app.command("stats")
def escalations_stats(
    plan: Annotated[
        str | None, typer.Option("--plan", help="Only this plan's.", show_default=False)
    ] = None,
    format: FormatOption = Format.text,
    tenant: TenantOption = None,
) -> None:
    """Per tier and model across every escalation: variants, win rate, mean score, mean cost."""
    from plan2flow.escalation import records, tier_model_stats

    with memory_database() as database:
        rows = tier_model_stats(records(database, resolve_tenant(tenant), plan=plan))
    if format is Format.json:
        _print_json(
            [
                {
                    "tier": row.tier,
                    "model": row.model,
                    "variants": row.variants,
                    "wins": row.wins,
                    "win_rate": round(row.win_rate, 4),
                    "mean_score": row.mean_score,
                    "mean_cost_usd": row.mean_cost_usd,
                    "estimated": row.estimated,
                }
                for row in rows
            ]
        )
        return
    out = consoles()[0]
    say(out, f"{'tier':<8} {'model':<20} {'variants':>8} {'wins':>5} {'win rate':>9} "
        f"{'mean score':>11} {'mean cost USD':>14}")  # fmt: skip
    for row in rows:
        say(
            out,
            f"{row.tier:<8} {row.model:<20} {row.variants:>8} {row.wins:>5} "
            f"{row.win_rate:>9.1%} {row.mean_score:>11.3f} {row.mean_cost_usd:>14.6f}",
        )
