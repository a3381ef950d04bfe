"""`plan2flow graph`: draw a plan's TaskGraph as Mermaid or DOT text, or as SVG/PNG via Graphviz."""

from __future__ import annotations

import enum
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from plan2flow.compiler import TaskGraphError, parse_taskgraph, write_all_atomic
from plan2flow.compiler.review.draw import dot, mermaid

from .app import EXIT_USAGE, app, consoles, nonempty_path, say
from .checking import Format, check, describe, exit_code, report


class DrawFormat(enum.StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


Renderer = Callable[[Mapping[str, Any]], str | bytes]


class _Refused(Exception):
    """A usage or I/O problem, reported as one line and exit status 2."""


@app.command("graph")
def graph_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="A plan (YAML) or a compiled TaskGraph (*.json).",
            metavar="PLAN|GRAPH",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        DrawFormat,
        typer.Option("--format", "-f", help="mermaid and dot are text; svg and png need Graphviz."),
    ] = DrawFormat.mermaid,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (atomically) instead of stdout.",
            parser=nonempty_path("--output"),
        ),
    ] = None,
) -> None:
    """Draw the TaskGraph: tasks grouped by component, shaped by type, edges labelled with the
    artifacts they carry."""
    console, err = consoles()
    try:
        renderer = _renderer(fmt, output)
        document = _document(source, console, err)
        drawn = renderer(document)
        if output is None:
            sys.stdout.write(drawn.decode("utf-8") if isinstance(drawn, bytes) else drawn)
        else:
            _write(output, drawn)
    except _Refused as problem:
        say(err, f"plan2flow: {problem}")
        raise typer.Exit(EXIT_USAGE) from None


def _renderer(fmt: DrawFormat, output: Path | None) -> Renderer:
    """The function that turns a document into the output, once the options are known to work."""
    if fmt is DrawFormat.mermaid:
        return mermaid
    if fmt is DrawFormat.dot:
        return dot
    if fmt is DrawFormat.png and output is None:
        raise _Refused("--format png is binary: give a file with --output")
    program = shutil.which("dot")
    if program is None:
        raise _Refused(
            f"--format {fmt} needs Graphviz: 'dot' is not on PATH "
            "(install the graphviz package, or use --format dot)"
        )
    return lambda document: _render(program, fmt, dot(document))


def _render(program: str, fmt: DrawFormat, text: str) -> bytes:
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=text.encode("utf-8"), capture_output=True, check=False
        )
    except OSError as error:
        raise _Refused(f"cannot run {program}: {error.strerror or error}") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", errors="replace").strip() or "no message"
        raise _Refused(f"{program} -T{fmt} failed (exit status {done.returncode}): {reason}")
    return done.stdout


def _document(source: Path, console: Console, err: Console) -> dict[str, Any]:
    """The TaskGraph document of a plan (compiled) or of a TaskGraph file (read)."""
    if source.name.endswith(".json"):
        try:
            data = source.read_bytes()
        except OSError as error:
            raise _Refused(f"cannot read {source}: {error.strerror or error}") from None
        try:
            return parse_taskgraph(data)
        except TaskGraphError as problem:
            raise _Refused(f"{source}: {problem.reason}") from None
    outcome = check(source, strict=False)
    if outcome.result is None:
        report([outcome], Format.human, console, err)
        raise typer.Exit(exit_code([outcome]))
    return outcome.result.graph.document


def _write(output: Path, drawn: str | bytes) -> None:
    try:
        write_all_atomic([(output, drawn)])
    except OSError as error:
        raise _Refused(f"cannot write {output}: {describe(error)}") from None
