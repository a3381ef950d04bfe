"""Checking plan files for the commands: compile, report diagnostics, choose the exit status."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plan2flow.compiler.errors import Diagnostic, PlanError, sort_diagnostics
from plan2flow.compiler.files import read_plan
from plan2flow.compiler.load import SourceMap
from plan2flow.compiler.metrics import PlanMetrics, write_metrics
from plan2flow.compiler.pipeline import CompileResult, compile_plan
from plan2flow.compiler.report import format_human, format_json, format_sarif
from plan2flow.observability.settings import tracing_requested

from .app import EXIT_INVALID, EXIT_OK, EXIT_USAGE, nonempty_path, say, version


class Format(enum.StrEnum):
    human = "human"
    json = "json"
    sarif = "sarif"


@dataclasses.dataclass
class Outcome:
    """What happened to one plan file."""

    path: Path
    text: str = ""
    result: CompileResult | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    unreadable: bool = False
    stage_seconds: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.unreadable


def check(path: Path, strict: bool) -> Outcome:
    outcome = Outcome(path)
    data, problem = read_plan(path)
    if data is None:
        assert problem is not None
        outcome.unreadable = True
        outcome.diagnostics = (problem,)
        return outcome
    outcome.text = data.decode("utf-8", errors="replace")
    try:
        outcome.result = _compile(data, path, strict, outcome)
        outcome.diagnostics = outcome.result.warnings
    except PlanError as error:
        outcome.diagnostics = error.diagnostics
    return outcome


def _compile(data: bytes, path: Path, strict: bool, outcome: Outcome) -> CompileResult:
    """Compile, timing each stage; with traces on, a ``compile`` span and one per stage."""

    def observe(stage: str, seconds: float) -> None:
        outcome.stage_seconds.append((stage, seconds))

    if not tracing_requested():  # off: not even OpenTelemetry's import is paid for
        return compile_plan(data, str(path), strict=strict, observe=observe)
    from plan2flow.observability import tracing

    with tracing.span("compile", attributes={"plan2flow.file": str(path)}) as span:
        record = tracing.stage_recorder(span)

        def observe_and_record(stage: str, seconds: float) -> None:
            observe(stage, seconds)
            if record is not None:
                record(stage, seconds)

        result = compile_plan(data, str(path), strict=strict, observe=observe_and_record)
        if span is not None:
            span.set_attribute("plan2flow.plan", result.graph.name)
            span.set_attribute("plan2flow.graph_hash", result.graph.hash)
        return result


def check_all(paths: list[Path], strict: bool) -> list[Outcome]:
    return [check(path, strict) for path in paths]


def report(outcomes: list[Outcome], fmt: Format, console: Console, err: Console) -> None:
    diagnostics = sort_diagnostics(d for o in outcomes for d in o.diagnostics)
    if fmt is Format.json:
        say(
            console,
            format_json(
                [
                    {
                        "file": str(o.path),
                        "ok": o.ok,
                        "hash": o.result.graph.hash if o.result else None,
                        "diagnostics": o.diagnostics,
                        "tasks": [dataclasses.asdict(p) for p in o.result.provenance()]
                        if o.result
                        else [],
                    }
                    for o in outcomes
                ]
            ),
            end="",
        )
        return
    if fmt is Format.sarif:
        say(console, format_sarif(diagnostics, version()), end="")
        return
    sources = {str(o.path): SourceMap(str(o.path), o.text) for o in outcomes}

    def source_line(file: str, line: int) -> str:
        source = sources.get(file)
        return source.line_text(line) if source else ""

    if diagnostics:
        say(err, format_human(diagnostics, source_line), end="")
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors or warnings:
        say(err, f"{len(outcomes)} plan(s) checked: {errors} error(s), {warnings} warning(s)")


def exit_code(outcomes: list[Outcome]) -> int:
    if any(o.unreadable for o in outcomes):
        return EXIT_USAGE
    if any(not o.ok for o in outcomes):
        return EXIT_INVALID
    return EXIT_OK


def record_metrics(path: Path | None, outcomes: list[Outcome]) -> None:
    if path is None:
        return
    plans = []
    for o in outcomes:
        graph = o.result.graph if o.result else None
        plans.append(
            PlanMetrics(
                plan=graph.name if graph else str(o.path),
                outcome="ok" if o.ok else "unreadable" if o.unreadable else "invalid",
                tasks=len(graph.document["tasks"]) if graph else 0,
                edges=len(graph.document["edges"]) if graph else 0,
                stage_seconds=tuple(o.stage_seconds),
            )
        )
    try:
        write_metrics(path, plans, [d for o in outcomes for d in o.diagnostics])
    except OSError as error:
        say(Console(stderr=True), f"plan2flow: cannot write metrics to {path}: {describe(error)}")
        raise typer.Exit(EXIT_USAGE) from None


def describe(error: OSError) -> str:
    """An OS error in a few words: its reason and, when it is not the path in hand, the file."""
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


PlansArg = Annotated[
    list[Path], typer.Argument(help="Plan files (YAML).", show_default=False, metavar="PLAN...")
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="How to report diagnostics.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")]
MetricsOpt = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="Write compile metrics in Prometheus text format (node-exporter textfile collector).",
        parser=nonempty_path("--metrics-file"),
    ),
]
