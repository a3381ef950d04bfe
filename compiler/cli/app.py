"""The `plan2flow` Typer app and what every command shares: exit codes, consoles, version."""

from __future__ import annotations

from importlib import metadata

import typer
from rich.console import Console

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="plan2flow",
    help="Compile YAML plans into hashed TaskGraphs and Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version() -> str:
    try:
        return metadata.version("plan2flow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def consoles() -> tuple[Console, Console]:
    return Console(), Console(stderr=True)


def say(console: Console, text: str, end: str = "\n") -> None:
    """Print text as it is: no markup, no highlighting, no wrapping."""
    console.print(text, end=end, markup=False, highlight=False, soft_wrap=True)
