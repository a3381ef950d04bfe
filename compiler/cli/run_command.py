"""`plan2flow run`: compile a plan (or load a TaskGraph) and run it with Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import EXIT_USAGE, app, consoles, say
from .checking import Format, check, exit_code, report


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
) -> None:
    """Run a plan with Prefect: ephemeral by default, on a server when PREFECT_API_URL is set."""
    console, err = consoles()
    from plan2flow.flows.launch import LaunchError, graph_from_file, prefect_environment, run_plan

    try:
        if target.name.endswith(".json"):
            graph, flow_source = graph_from_file(target)
        else:
            outcome = check(target, strict=False)
            if outcome.result is None:
                report([outcome], Format.human, console, err)
                raise typer.Exit(exit_code([outcome]))
            graph, flow_source = outcome.result.graph, outcome.result.flow_source
        prefect_environment(verbose)
        code = run_plan(
            graph,
            flow_source,
            str(target),
            param or [],
            max_parallel=max_parallel,
            no_cache=no_cache,
            console=console,
        )
    except (LaunchError, OSError) as error:
        say(err, f"plan2flow: {error}")
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)
