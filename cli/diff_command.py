"""`plan2flow diff BASE HEAD`: what a plan change does to its TaskGraph, for people and CI."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from plan2flow.compiler.errors import PlanError
from plan2flow.compiler.review.diff import diff_graphs
from plan2flow.compiler.review.diff_format import format_json, format_markdown, format_text
from plan2flow.compiler.review.sources import SideData, SourceError, side_document

from .app import EXIT_INVALID, EXIT_OK, EXIT_USAGE, app, consoles, say
from .checking import Format, Outcome, report
from .sources import read_side


class DiffFormat(enum.StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


class Color(enum.StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


_SIDE_HELP = "A plan (YAML), a TaskGraph (.json), or REV:path read from git (main:plans/x.yaml)."
BaseArg = Annotated[str, typer.Argument(help=_SIDE_HELP, metavar="BASE", show_default=False)]
HeadArg = Annotated[str, typer.Argument(help=_SIDE_HELP, metavar="HEAD", show_default=False)]


@app.command("diff")
def diff_command(
    base: BaseArg,
    head: HeadArg,
    fmt: Annotated[
        DiffFormat, typer.Option("--format", "-f", help="text, markdown (PR comment) or json.")
    ] = DiffFormat.text,
    color: Annotated[
        Color, typer.Option("--color", help="Colour the text format (auto: on a terminal).")
    ] = Color.auto,
    missing_ok: Annotated[
        bool,
        typer.Option(
            "--missing-ok",
            help="A side that does not exist (a plan added or deleted) is an empty graph.",
        ),
    ] = False,
) -> None:
    """Compare two versions of a plan: tasks added, removed, changed, renamed and impacted,
    edges, artifacts and plan fields. Exit 0 same, 1 different, 2 error."""
    _, err = consoles()
    documents = [_document(side, missing_ok, err) for side in (base, head)]
    diff = diff_graphs(documents[0], documents[1])
    if fmt is DiffFormat.json:
        text = format_json(diff, base, head)
    elif fmt is DiffFormat.markdown:
        text = format_markdown(diff, base, head)
    else:
        painted = color is Color.always or (color is Color.auto and sys.stdout.isatty())
        text = format_text(diff, base, head, color=painted)
    sys.stdout.write(text)
    raise typer.Exit(EXIT_OK if diff.same else EXIT_INVALID)


def _document(spec: str, missing_ok: bool, err: Console) -> dict[str, Any]:
    """One side's document; a side that cannot be read, or an invalid plan (its diagnostics
    first), ends the command with status 2: there is nothing to compare."""
    side: SideData | None = None
    try:
        side = read_side(spec, missing_ok=missing_ok)
        return side_document(side)
    except SourceError as error:
        say(err, f"plan2flow: {error}")
    except PlanError as error:
        assert side is not None and side.data is not None
        text = side.data.decode("utf-8", errors="replace")
        outcome = Outcome(Path(side.file_name), text, diagnostics=error.diagnostics)
        report([outcome], Format.human, err, err)
        say(err, f"plan2flow: {spec}: not a valid plan; nothing to compare")
    raise typer.Exit(EXIT_USAGE)
