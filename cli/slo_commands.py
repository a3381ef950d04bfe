"""`plan2flow slo rules|report`: a plan's service-level objectives as Prometheus rules, and how
they stand according to a Prometheus (see docs/observability.md#slos).

Exit status: 0, 1 a plan is invalid or (``report``) an objective is not met, 2 usage, I/O or an
unreachable Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .app import EXIT_INVALID, EXIT_USAGE, app, consoles, say
from .checking import Format, check, exit_code, report

slo_app = typer.Typer(
    help="Service-level objectives of plans (their `slo:` section) as Prometheus rules.",
    no_args_is_help=True,
)
app.add_typer(slo_app, name="slo")


def _objectives(plans: list[Path]) -> list[Any]:
    from plan2flow.observability.errors import SloError
    from plan2flow.observability.slo import objectives

    console, err = consoles()
    found: list[Any] = []
    for path in plans:
        outcome = check(path, strict=False)
        if outcome.result is None:
            report([outcome], Format.human, console, err)
            raise typer.Exit(exit_code([outcome]))
        if outcome.result.slo is not None:
            try:
                found += objectives(outcome.result.graph.name, outcome.result.slo)
            except SloError as error:
                say(err, f"plan2flow: {path}: {error}")
                raise typer.Exit(error.exit_status) from None
    return found


@slo_app.command("rules")
def rules(
    plans: Annotated[list[Path], typer.Argument(help="Plans with an `slo:` section.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the rule file here.")
    ] = None,
) -> None:
    """Print (or write) recording and multi-window burn-rate alert rules for the plans' SLOs."""
    from plan2flow.observability.slo import rules_yaml

    text = rules_yaml(_objectives(plans))
    console, err = consoles()
    if output is None:
        say(console, text, end="")
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        say(err, f"plan2flow: cannot write {output}: {error.strerror or error}")
        raise typer.Exit(EXIT_USAGE) from None


@slo_app.command("report")
def slo_report(
    plans: Annotated[list[Path], typer.Argument(help="Plans with an `slo:` section.")],
    prometheus: Annotated[
        str, typer.Option("--prometheus", help="The Prometheus that scrapes plan2flow.")
    ] = "http://127.0.0.1:9090",
) -> None:
    """Compliance and error budget left of each objective over its window; exit 1 when one is
    not met."""
    from plan2flow.observability.errors import SloError
    from plan2flow.observability.slo_report import measure

    console, err = consoles()
    missed = False
    try:
        standings = measure(_objectives(plans), prometheus)
    except SloError as error:
        say(err, f"plan2flow: {error}")
        raise typer.Exit(error.exit_status) from None
    for standing in standings:
        slo = standing.objective
        head = f"{slo.plan} {slo.sli} {slo.objective:.4g} over {slo.window}:"
        if standing.good_ratio is None or standing.budget_left is None:
            say(console, f"{head} no run in the window")
            continue
        verdict = "met" if standing.met else "NOT met"
        missed = missed or not standing.met
        say(
            console,
            f"{head} {standing.good_ratio:.4%} good, {verdict}, "
            f"error budget left {standing.budget_left:.1%}",
        )
    if missed:
        raise typer.Exit(EXIT_INVALID)
