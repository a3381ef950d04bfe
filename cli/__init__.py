"""``plan2flow``: the command line. Reads files, calls the pure compiler, writes outputs.

Exit status: 0 every plan is valid, 1 a plan is invalid, 2 usage or I/O error.
Diagnostics go to stderr in the human format, to stdout as JSON or SARIF.
Each module registers its commands on the one Typer `app`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import (
    agents_commands,
    compile_commands,
    diff_command,
    events_commands,
    golden_commands,
    graph_commands,
    run_command,
    server_commands,
)
from .app import app, tolerate_encoding, version

_COMMANDS = (
    agents_commands,
    compile_commands,
    diff_command,
    events_commands,
    golden_commands,
    graph_commands,
    run_command,
    server_commands,
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"plan2flow {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Compile YAML plans into hashed TaskGraphs and Prefect flows."""
    tolerate_encoding()


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
