"""The `plan2flow` Typer app and what every command shares: exit codes, consoles, version."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import typer
from rich.console import Console

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
NO_SERVER = (
    "no Prefect server: start one with `plan2flow up` or set PREFECT_API_URL "
    "(deployments and agents need a server; `plan2flow run` works without one)"
)

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


def tolerate_encoding() -> None:
    """Let stdout and stderr print any character, escaped where their encoding has none (an
    ASCII terminal, PYTHONIOENCODING=ascii): a report must not fail after its files are written."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def nonempty_path(option: str) -> Callable[[str], Path]:
    """A parser for a path option that refuses an empty value: `Path("")` would silently mean
    the current directory."""

    def parse(value: str) -> Path:
        if not value:
            say(
                Console(stderr=True),
                f"plan2flow: {option}: empty path (use . for the current directory)",
            )
            raise typer.Exit(EXIT_USAGE)
        return Path(value)

    return parse
