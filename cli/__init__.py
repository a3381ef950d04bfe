"""``plan2flow``: the command line. Reads files, calls the pure compiler, writes outputs.

Exit status: 0 every plan is valid, 1 a plan is invalid, 2 usage or I/O error.
Diagnostics go to stderr in the human format, to stdout as JSON or SARIF.
Each module registers its commands on the one Typer `app`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

# Each module registers its commands on `app` when it is imported.
from . import (  # noqa: F401
    agents_commands,
    approvals_commands,
    artifacts_commands,
    audit_commands,
    compile_commands,
    costs_commands,
    db_commands,
    diff_command,
    escalations_commands,
    events_commands,
    golden_commands,
    graph_commands,
    keys_commands,
    metrics_commands,
    run_command,
    server_commands,
    slo_commands,
    tenant_hosts_commands,
)
from .app import EXIT_USAGE, app, say, tolerate_encoding, version


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


ROOT_ERRORS = (
    ("plan2flow.compiler.errors", "CompilerError"),
    ("plan2flow.flows.errors", "FlowsError"),
    ("plan2flow.agents.errors", "AgentError"),
    ("plan2flow.escalation.errors", "EscalationError"),
    ("plan2flow.events.errors", "EventError"),
    ("plan2flow.memory.errors", "MemoryStoreError"),
    ("plan2flow.observability.errors", "ObservabilityError"),
    ("plan2flow.server.errors", "OperationError"),
)
"""The root error of every part; each carries its exit status and says itself in one line.
Looked up among the loaded modules: a part that never loaded raised nothing, and importing the
agents here would import Prefect into `validate`."""


def part_error(error: BaseException) -> int | None:
    """The exit status of an error of one of the parts, or ``None`` for anything else (a bug)."""
    for module, name in ROOT_ERRORS:
        root = getattr(sys.modules.get(module), name, None)
        if isinstance(root, type) and isinstance(error, root):
            return int(getattr(error, "exit_status", EXIT_USAGE))
    return None


def main() -> None:
    """Console-script entry point: an error no command handled still ends in one line."""
    try:
        app()
    except Exception as error:
        status = part_error(error)
        if status is None:
            raise
        say(Console(stderr=True), f"plan2flow: {error}")
        raise SystemExit(status) from None


__all__ = ["app", "main"]
