"""``plan2flow``: the command line. Reads files, calls the pure compiler, writes outputs.

Exit status: 0 every plan is valid, 1 a plan is invalid, 2 usage or I/O error.
Diagnostics go to stderr in the human format, to stdout as JSON or SARIF.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .codegen import flow_file_name, graph_file_name
from .errors import Diagnostic, PlanError, diagnostic, sort_diagnostics
from .files import read_plan, write_all_atomic
from .load import SourceMap
from .metrics import PlanMetrics, write_metrics
from .pipeline import CompileResult, compile_plan
from .report import format_human, format_json, format_sarif
from .schema import render_schema

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="plan2flow",
    help="Compile YAML plans into hashed TaskGraphs and Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(enum.StrEnum):
    human = "human"
    json = "json"
    sarif = "sarif"


def _version() -> str:
    try:
        return metadata.version("plan2flow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


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


def _check(path: Path, strict: bool) -> Outcome:
    outcome = Outcome(path)
    data, problem = read_plan(path)
    if data is None:
        assert problem is not None
        outcome.unreadable = True
        outcome.diagnostics = (problem,)
        return outcome
    outcome.text = data.decode("utf-8", errors="replace")
    try:
        outcome.result = compile_plan(
            data,
            str(path),
            strict=strict,
            observe=lambda stage, seconds: outcome.stage_seconds.append((stage, seconds)),
        )
        outcome.diagnostics = outcome.result.warnings
    except PlanError as error:
        outcome.diagnostics = error.diagnostics
    return outcome


def _check_all(paths: list[Path], strict: bool) -> list[Outcome]:
    return [_check(path, strict) for path in paths]


def _report(outcomes: list[Outcome], fmt: Format, console: Console, err: Console) -> None:
    diagnostics = sort_diagnostics(d for o in outcomes for d in o.diagnostics)
    if fmt is Format.json:
        console.print(
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
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    if fmt is Format.sarif:
        console.print(
            format_sarif(diagnostics, _version()),
            end="",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    sources = {str(o.path): SourceMap(str(o.path), o.text) for o in outcomes}

    def source_line(file: str, line: int) -> str:
        source = sources.get(file)
        return source.line_text(line) if source else ""

    if diagnostics:
        err.print(
            format_human(diagnostics, source_line),
            end="",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors or warnings:
        err.print(
            f"{len(outcomes)} plan(s) checked: {errors} error(s), {warnings} warning(s)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _exit_code(outcomes: list[Outcome]) -> int:
    if any(o.unreadable for o in outcomes):
        return EXIT_USAGE
    if any(not o.ok for o in outcomes):
        return EXIT_INVALID
    return EXIT_OK


def _metrics(path: Path | None, outcomes: list[Outcome]) -> None:
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
    write_metrics(path, plans, [d for o in outcomes for d in o.diagnostics])


def _consoles() -> tuple[Console, Console]:
    return Console(), Console(stderr=True)


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
    ),
]


@app.command()
def validate(
    plans: PlansArg,
    fmt: FormatOpt = Format.human,
    strict: StrictOpt = False,
    metrics_file: MetricsOpt = None,
) -> None:
    """Check plans and report every problem in them; write nothing."""
    console, err = _consoles()
    outcomes = _check_all(plans, strict)
    _report(outcomes, fmt, console, err)
    if fmt is Format.human:
        for o in outcomes:
            if o.result is not None:
                console.print(f"{o.path}: valid", markup=False, highlight=False)
    _metrics(metrics_file, outcomes)
    raise typer.Exit(_exit_code(outcomes))


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
            "--output-dir", "-o", help="Where to write outputs [default: beside each plan]."
        ),
    ] = None,
    fmt: FormatOpt = Format.human,
    strict: StrictOpt = False,
    metrics_file: MetricsOpt = None,
) -> None:
    """Compile plans into `<name>.taskgraph.json` and `<name>_flow.py`; nothing is written unless
    every plan is valid."""
    console, err = _consoles()
    outcomes = _check_all(plans, strict)
    _collisions(outcomes, output_dir)
    _report(outcomes, fmt, console, err)
    code = _exit_code(outcomes)
    if code == EXIT_OK:
        writes = []
        for o in outcomes:
            assert o.result is not None
            target = _target(o, output_dir)
            writes.append((target, o.result.graph.text))
            writes.append(
                (target.parent / flow_file_name(o.result.graph.name), o.result.flow_source)
            )
        try:
            write_all_atomic(writes)
        except OSError as error:
            err.print(
                f"plan2flow: cannot write outputs: {error}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USAGE) from None
        if fmt is Format.human:
            for o, (target, _) in zip(outcomes, writes[::2], strict=True):
                assert o.result is not None
                graph = o.result.graph
                module = target.parent / flow_file_name(graph.name)
                console.print(
                    f"{o.path} → {target}, {module.name}  {len(graph.document['tasks'])} tasks, "
                    f"{len(graph.document['edges'])} edges  {graph.hash}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    _metrics(metrics_file, outcomes)
    raise typer.Exit(code)


@app.command("hash")
def hash_command(plan: Annotated[Path, typer.Argument(help="A plan file.")]) -> None:
    """Print the plan's graph hash (sha256:...)."""
    console, err = _consoles()
    outcome = _check(plan, strict=False)
    if outcome.result is None:
        _report([outcome], Format.human, console, err)
        raise typer.Exit(_exit_code([outcome]))
    console.print(outcome.result.graph.hash, markup=False, highlight=False)


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the PlanSpec JSON Schema (Draft 2020-12)."""
    text = render_schema()
    if output is None:
        sys.stdout.write(text)
        return
    write_all_atomic([(output, text)])


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
    console, err = _consoles()
    from plan2flow.flows.launch import LaunchError, graph_from_file, prefect_environment, run_plan

    try:
        if target.name.endswith(".json"):
            graph, flow_source = graph_from_file(target)
        else:
            outcome = _check(target, strict=False)
            if outcome.result is None:
                _report([outcome], Format.human, console, err)
                raise typer.Exit(_exit_code([outcome]))
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
        err.print(f"plan2flow: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)


agents_app = typer.Typer(
    help="The agents that run the software-factory task types (Prefect Blocks).",
    no_args_is_help=True,
)
app.add_typer(agents_app, name="agents")


def _agents_env() -> None:
    from plan2flow.flows.launch import prefect_environment

    prefect_environment()


@agents_app.command("register")
def agents_register() -> None:
    """Register every agent block type and its `default` document (idempotent)."""
    _agents_env()
    from plan2flow.agents.registry import register_all

    console, _ = _consoles()
    for slug, change in register_all():
        console.print(f"{slug}: {change}", markup=False, highlight=False)


@agents_app.command("list")
def agents_list() -> None:
    """Show every agent: task types, documents on the server, health."""
    _agents_env()
    from rich.table import Column, Table

    from plan2flow.agents.registry import statuses

    console, _ = _consoles()
    import datetime

    table = Table("task types", "documents", "health", "latency", "checked")
    table.columns.insert(0, Column("agent", no_wrap=True))
    for item in statuses():
        checked = datetime.datetime.fromtimestamp(item.checked_at, datetime.UTC)
        table.add_row(
            item.slug,
            ", ".join(item.task_types),
            ", ".join(item.documents) or "(none)",
            "ok" if item.healthy else f"unhealthy: {item.detail}",
            f"{item.latency_seconds * 1000:.1f} ms",
            checked.strftime("%H:%M:%S UTC"),
        )
    console.print(table)


@agents_app.command("unregister")
def agents_unregister(
    name: Annotated[str, typer.Argument(help="An agent: `tester` or `plan2flow-tester`.")],
) -> None:
    """Remove an agent's block type and its documents from the server."""
    _agents_env()
    from plan2flow.agents.registry import unregister

    console, err = _consoles()
    try:
        console.print(unregister(name), markup=False, highlight=False)
    except KeyError as error:
        err.print(f"plan2flow: {error.args[0]}", markup=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


@agents_app.command("health")
def agents_health(
    watch: Annotated[bool, typer.Option("--watch", help="Check again and again.")] = False,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Serve the check as a Prefect deployment on a schedule."),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=1, help="Seconds between checks.")
    ] = 30,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Export Prometheus metrics on this port."),
    ] = None,
) -> None:
    """Check every agent's health; publish `plan2flow.agent.health` events and, with
    --metrics-port, Prometheus metrics. Exit 1 if any agent is unhealthy."""
    _agents_env()
    import time

    from prometheus_client import start_http_server

    from plan2flow.flows.health import check_agents

    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")
    if serve:
        check_agents.serve(name="every-30s", interval=interval)
        return
    console, _ = _consoles()
    while True:
        results = check_agents.fn()
        for item in results:
            state = "ok" if item["healthy"] else f"unhealthy: {item['detail']}"
            console.print(f"{item['agent']}: {state}", markup=False, highlight=False)
        if not watch:
            raise typer.Exit(0 if all(i["healthy"] for i in results) else 1)
        time.sleep(interval)


def _version_callback(value: bool) -> None:
    if value:
        print(f"plan2flow {_version()}")
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


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
