"""`plan2flow golden check|update`: are the committed outputs of the plans what they compile to?

The comparison is ``compiler.review.golden``'s; this module finds the plans on disk, reads them and
the committed outputs, prints, and (``update``) writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plan2flow.compiler.files import read_plan, write_all_atomic
from plan2flow.compiler.load import SourceMap
from plan2flow.compiler.report import format_human
from plan2flow.compiler.review.golden import (
    PlanCheck,
    Status,
    check_plan,
    is_searched_dir,
    is_yaml_name,
    pending_writes,
    summary,
    unreadable_plan,
    without_collisions,
)

from .app import EXIT_INVALID, EXIT_OK, EXIT_USAGE, app, consoles, nonempty_path, say
from .checking import describe
from .hooks import holds_plan

golden_app = typer.Typer(
    help="Check or update the committed TaskGraph and flow module of each plan.",
    no_args_is_help=True,
)
app.add_typer(golden_app, name="golden")

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Plan files, or folders searched for plans (*.yaml, *.yml) [default: .].",
        metavar="[PATH]...",
        show_default=False,
    ),
]
OutputDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        help="Where the outputs are compiled to [default: beside each plan].",
        parser=nonempty_path("--output-dir"),
    ),
]


class _Refused(Exception):
    """A usage or I/O problem, reported as one line and exit status 2."""


@golden_app.command("check")
def golden_check(paths: PathsArg = None, output_dir: OutputDirOpt = None) -> None:
    """Compare each plan's committed outputs with what it compiles to; print a diff for each
    stale or missing one. Writes nothing."""
    _, err = consoles()
    checks = _checks_or_exit(paths, output_dir, err)
    for check in checks:
        _show_diagnostics(check, err)
        for output in check.outdated:
            say(err, f"{check.plan}: {output.path} is {output.status}")
            sys.stdout.write(output.diff)
    say(err, summary(checks))
    if any(check.outdated for check in checks):
        say(err, "run 'plan2flow golden update' with the same arguments to rewrite them")
    raise typer.Exit(_exit_status(checks))


@golden_app.command("update")
def golden_update(paths: PathsArg = None, output_dir: OutputDirOpt = None) -> None:
    """Rewrite each plan's stale or missing outputs, all or nothing: if any plan is invalid,
    nothing is written."""
    console, err = consoles()
    checks = _checks_or_exit(paths, output_dir, err)
    for check in checks:
        _show_diagnostics(check, err)
    say(err, summary(checks))
    status = _exit_status(checks)
    if any(check.result is None for check in checks):
        say(err, "nothing written: every plan must compile first")
        raise typer.Exit(status)
    writes = pending_writes(checks)
    try:
        write_all_atomic(writes)
    except OSError as error:
        say(err, f"plan2flow: cannot write outputs: {describe(error)}")
        raise typer.Exit(EXIT_USAGE) from None
    for check in checks:
        for output in check.outdated:
            say(console, f"wrote {output.path} (was {output.status})")
    raise typer.Exit(EXIT_OK)


def _checks_or_exit(
    paths: Sequence[Path] | None, output_dir: Path | None, err: Console
) -> list[PlanCheck]:
    try:
        plans = _find_plans(paths or [Path(".")])
        return without_collisions([_check(plan, output_dir) for plan in plans])
    except _Refused as problem:
        say(err, f"plan2flow: {problem}")
        raise typer.Exit(EXIT_USAGE) from None


def _check(plan: Path, output_dir: Path | None) -> PlanCheck:
    data, problem = read_plan(plan)
    if data is None:
        assert problem is not None
        return unreadable_plan(plan, problem)
    return check_plan(plan, data, _read_output, output_dir)


def _read_output(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise _Refused(f"cannot read {path}: {error.strerror or error}") from None


def _find_plans(paths: Sequence[Path]) -> list[Path]:
    """The plans among the files and in the folders (searched recursively), each once, sorted."""
    found: dict[Path, Path] = {}
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise _Refused(f"{missing[0]}: no such file or directory")
    for path in paths:
        for candidate in _walk(path) if path.is_dir() else [path]:
            if holds_plan(candidate):
                found.setdefault(Path(os.path.realpath(candidate)), candidate)
    return sorted(found.values(), key=lambda plan: plan.as_posix())


def _walk(root: Path) -> Iterator[Path]:
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if is_searched_dir(name))
        for name in sorted(files):
            if is_yaml_name(name):
                yield Path(directory) / name


def _show_diagnostics(check: PlanCheck, err: Console) -> None:
    if check.result is not None:
        return
    source = SourceMap(str(check.plan), check.text)
    text = format_human(check.diagnostics, lambda _file, line: source.line_text(line))
    say(err, text, end="")


def _exit_status(checks: Sequence[PlanCheck]) -> int:
    if any(check.unreadable for check in checks):
        return EXIT_USAGE
    if any(check.status is not Status.UP_TO_DATE for check in checks):
        return EXIT_INVALID
    return EXIT_OK
