"""`plan2flow run`: compile a plan (or load a TaskGraph) and run it with Prefect."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from .app import EXIT_INTERRUPTED, EXIT_USAGE, app, consoles, say
from .checking import Format, check, exit_code, report
from .memory_options import memory_database, resolve_tenant


@app.command()
def run(
    target: Annotated[
        Path, typer.Argument(help="A plan (YAML) or a compiled TaskGraph (.taskgraph.json).")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A plan parameter, NAME=VALUE (repeatable)."),
    ] = None,
    max_parallel: Annotated[
        int | None,
        typer.Option("--max-parallel", min=1, help="Worker threads [default: the plan's]."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every task, even those that already succeeded.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="Write the run's metrics here (Prometheus text, for node-exporter's textfile "
            "collector), atomically.",
        ),
    ] = None,
) -> None:
    """Run a plan with Prefect: ephemeral by default, on a server when PREFECT_API_URL is set."""
    console, err = consoles()
    try:
        code = _run(target, param or [], max_parallel, no_cache, verbose, console, err)
        if metrics_file is not None:
            _write_metrics(metrics_file, err)
    except KeyboardInterrupt:  # before the run started: nothing to cancel
        say(err, "plan2flow: interrupted (SIGINT): nothing was run")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


def _run(
    target: Path,
    params: list[str],
    max_parallel: int | None,
    no_cache: bool,
    verbose: bool,
    console: Console,
    err: Console,
) -> int:
    from plan2flow.server.launch import (
        Interrupted,
        LaunchError,
        graph_from_file,
        prefect_environment,
        run_plan,
    )

    try:
        if target.name.endswith(".json"):
            graph, flow_source = graph_from_file(target)
        else:
            outcome = check(target, strict=False)
            if outcome.result is None:
                report([outcome], Format.human, console, err)
                raise typer.Exit(exit_code([outcome]))
            graph, flow_source = outcome.result.graph, outcome.result.flow_source
        _admit(graph.name, graph.document["settings"].get("budget"))
        prefect_environment(verbose)
        return run_plan(
            graph,
            flow_source,
            str(target),
            params,
            max_parallel=max_parallel,
            no_cache=no_cache,
            console=console,
        )
    except (LaunchError, OSError) as error:
        say(err, f"plan2flow: {error}")
        raise typer.Exit(EXIT_USAGE) from None
    except Interrupted as stop:
        say(err, f"plan2flow: {stop}")
        _end_now(stop.status)


def _admit(plan: str, declared: dict[str, Any] | None) -> None:
    """Refuse the run before a flow run is made when its plan's or tenant's budget is spent
    (``P2F801``) or the compute price is not one (``P2F803``); the runtime checks again, for
    runs started elsewhere."""
    from plan2flow.memory.budgets import admit_run
    from plan2flow.memory.cost_rules import compute_price

    compute_price()
    with memory_database() as database:
        admit_run(database, resolve_tenant(None), plan, declared)


def _write_metrics(path: Path, err: Console) -> None:
    from plan2flow.observability.budgets import register_budgets
    from plan2flow.observability.feed import settle
    from plan2flow.observability.metrics import process_metrics
    from plan2flow.observability.textfile import write_textfile

    metrics = process_metrics()
    settle(metrics)
    with memory_database() as database:
        budgets = register_budgets(metrics.registry, database)
        try:
            write_textfile(path, metrics.registry)
        except OSError as error:
            say(err, f"plan2flow: cannot write metrics to {path}: {error.strerror or error}")
            raise typer.Exit(EXIT_USAGE) from None
        finally:
            metrics.registry.unregister(budgets)


def _end_now(status: int) -> NoReturn:
    """Exit at once: a task thread running Python code cannot be stopped, and Prefect's exit
    handlers would wait for it and then report every event the cancelled run still held."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
