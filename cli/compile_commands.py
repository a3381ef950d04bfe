"""The compiler's own commands: validate, compile, hash, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from plan2flow.compiler import flow_file_name, graph_file_name, output_files, write_all_atomic
from plan2flow.compiler.errors import diagnostic
from plan2flow.compiler.schema import render_schema

from .app import EXIT_OK, EXIT_USAGE, app, consoles, nonempty_path, say
from .checking import (
    Format,
    FormatOpt,
    MetricsOpt,
    Outcome,
    PlansArg,
    StrictOpt,
    check_all,
    describe,
    exit_code,
    record_metrics,
    report,
)
from .journal import journal


@app.command()
def validate(
    plans: PlansArg,
    fmt: FormatOpt = Format.human,
    strict: StrictOpt = False,
    metrics_file: MetricsOpt = None,
) -> None:
    """Check plans and report every problem in them; write nothing."""
    console, err = consoles()
    outcomes = check_all(plans, strict)
    report(outcomes, fmt, console, err)
    if fmt is Format.human:
        for o in outcomes:
            if o.result is not None:
                say(console, f"{o.path}: valid")
    record_metrics(metrics_file, outcomes)
    raise typer.Exit(exit_code(outcomes))


def _collisions(outcomes: list[Outcome], output_dir: Path | None) -> None:
    """Two plans that would write the same file: the second one gets a P2F210 error."""
    targets: dict[Path, Path] = {}
    for o in outcomes:
        if o.result is None:
            continue
        graph_target = _target(o, output_dir)
        for target in (graph_target, graph_target.parent / flow_file_name(o.result.graph.name)):
            first = targets.setdefault(target.resolve(), o.path)
            if first == o.path:
                continue
            problem = diagnostic(
                "P2F210",
                f"plan name '{o.result.graph.name}' collides with the plan in {first}: both "
                f"would write {target}",
                "/metadata/name",
                hint="give each plan a unique metadata.name",
            )
            o.diagnostics = (*o.diagnostics, o.result.source_map.locate(problem))
            o.result = None
            break


def _target(outcome: Outcome, output_dir: Path | None) -> Path:
    """Where a plan's TaskGraph goes; its flow module goes beside it."""
    assert outcome.result is not None
    directory = output_dir if output_dir is not None else outcome.path.parent
    return directory / graph_file_name(outcome.result.graph.name)


@app.command("compile")
def compile_command(
    plans: PlansArg,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Where to write outputs [default: beside each plan].",
            parser=nonempty_path("--output-dir"),
        ),
    ] = None,
    fmt: FormatOpt = Format.human,
    strict: StrictOpt = False,
    metrics_file: MetricsOpt = None,
) -> None:
    """Compile plans into `<name>.taskgraph.json` and `<name>_flow.py`; nothing is written unless
    every plan is valid."""
    console, err = consoles()
    outcomes = check_all(plans, strict)
    _collisions(outcomes, output_dir)
    report(outcomes, fmt, console, err)
    code = exit_code(outcomes)
    if code == EXIT_OK:
        writes = []
        for o in outcomes:
            assert o.result is not None
            directory = _target(o, output_dir).parent
            writes += output_files(o.result.graph, o.result.flow_source, directory)
        try:
            write_all_atomic(writes)
        except OSError as error:
            say(err, f"plan2flow: cannot write outputs: {describe(error)}")
            raise typer.Exit(EXIT_USAGE) from None
        for o, (target, _) in zip(outcomes, writes[::2], strict=True):
            assert o.result is not None
            graph = o.result.graph
            journal(err, "compile", graph.name, {"hash": graph.hash, "output": str(target)})
        if fmt is Format.human:
            for o, (target, _) in zip(outcomes, writes[::2], strict=True):
                assert o.result is not None
                graph = o.result.graph
                module = target.parent / flow_file_name(graph.name)
                say(
                    console,
                    f"{o.path} → {target}, {module.name}  {len(graph.document['tasks'])} tasks, "
                    f"{len(graph.document['edges'])} edges  {graph.hash}",
                )
    record_metrics(metrics_file, outcomes)
    raise typer.Exit(code)


@app.command("hash")
def hash_command(plans: PlansArg) -> None:
    """Print the plan's graph hash (sha256:...); for several plans, `<hash>  <plan>` lines."""
    console, err = consoles()
    outcomes = check_all(plans, strict=False)
    hashes = [(o.result.graph.hash, o.path) for o in outcomes if o.result is not None]
    if len(hashes) < len(outcomes):  # none is printed unless every plan has one
        report(outcomes, Format.human, console, err)
        raise typer.Exit(exit_code(outcomes))
    for digest, path in hashes:
        say(console, digest if len(hashes) == 1 else f"{digest}  {path}")


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file instead of stdout.",
            parser=nonempty_path("--output"),
        ),
    ] = None,
) -> None:
    """Print the PlanSpec JSON Schema (Draft 2020-12)."""
    text = render_schema()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_all_atomic([(output, text)])
    except OSError as error:
        say(consoles()[1], f"plan2flow: cannot write {output}: {describe(error)}")
        raise typer.Exit(EXIT_USAGE) from None
