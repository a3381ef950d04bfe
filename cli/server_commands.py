"""The Prefect server path: `up`, `down`, `deploy`, `runs` and `trigger`.

Prefect is imported inside the commands, so the compiler's commands stay fast and Prefect-free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .app import EXIT_OK, EXIT_USAGE, NO_SERVER, app, consoles, nonempty_path, say
from .checking import Format, PlansArg, check, check_all, describe, exit_code, report
from .journal import journal

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A plan parameter, NAME=VALUE (repeatable)."),
]


def _fail(err: Console, message: str, code: int = EXIT_USAGE) -> typer.Exit:
    say(err, f"plan2flow: {message}")
    return typer.Exit(code)


def _require_server(err: Console) -> str:
    """Set up Prefect's environment and return the API URL, or stop: there is no server."""
    from plan2flow.server.launch import prefect_environment

    prefect_environment()
    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        raise _fail(err, NO_SERVER)
    return api_url


def _ui_url(api_url: str) -> str:
    """The UI beside the API (PREFECT_UI_URL when the UI is served elsewhere)."""
    return os.environ.get("PREFECT_UI_URL") or api_url.removesuffix("/api")


@app.command()
def up(
    port: Annotated[int, typer.Option("--port", help="The server's port.")] = 4200,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind; 0.0.0.0 lets workers on other machines in."),
    ] = "127.0.0.1",
    pool: Annotated[
        str, typer.Option("--pool", help="The `process` work pool to create and serve.")
    ] = "plan2flow",
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The server's database, e.g. postgresql+asyncpg://user@host/prefect "
            "[default: SQLite in the plan2flow home].",
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start in the background; stop with `down`.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the server and worker.")
    ] = 120,
) -> None:
    """Start a local Prefect server, a process work pool and its worker; register the agents.

    In the foreground until Ctrl-C, which stops the worker, then the server."""
    from plan2flow.home import plan2flow_home
    from plan2flow.server.local import ServerConfig, ServerError, start, wait_until_interrupted

    console, err = consoles()
    config = ServerConfig(host=host, port=port, pool=pool, database_url=database_url)
    try:
        state, pids = start(config, progress=lambda line: say(console, line), timeout=timeout)
    except ServerError as error:
        raise _fail(err, str(error)) from None
    say(console, f"Prefect UI:  {state.ui_url}")
    say(console, f"API:         {state.api_url}  (database: {state.database})")
    say(console, f"work pool:   {state.pool} (worker pid {state.worker_pid})")
    say(console, f"home:        {plan2flow_home()}")
    say(console, "plan2flow commands on this machine use this server while it runs; for the")
    say(console, f"prefect CLI: export PREFECT_API_URL={state.api_url}")
    if detach:
        say(console, "running in the background; stop it with `plan2flow down`")
        return
    code = wait_until_interrupted(pids, ready=lambda: say(console, "press Ctrl-C to stop"))
    say(console, "stopped" if code == EXIT_OK else "the server or the worker stopped on its own")
    raise typer.Exit(code)


@app.command()
def down() -> None:
    """Stop the worker and the server that `plan2flow up --detach` started."""
    from plan2flow.server.local import stop

    console, _ = consoles()
    if not stop(progress=lambda line: say(console, line)):
        say(console, "no plan2flow server is running")


@app.command()
def deploy(
    plans: PlansArg,
    pool: Annotated[
        str | None,
        typer.Option("--pool", help="Work pool [default: the one `up` serves, or plan2flow]."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Deployment name [default: the plan's name].")
    ] = None,
    param: ParamOpt = None,
    prefect_yaml: Annotated[
        Path | None,
        typer.Option(
            "--prefect-yaml",
            help="Write the deployments into this prefect.yaml (for `prefect deploy`) "
            "instead of deploying.",
            parser=nonempty_path("--prefect-yaml"),
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="With --prefect-yaml: where to write the flows [default: beside the file].",
            parser=nonempty_path("--output-dir"),
        ),
    ] = None,
) -> None:
    """Compile plans and create or update one Prefect deployment each, with the plan's
    schedule, parameters and description, versioned by the graph hash.

    Every plan is compiled and checked first; nothing is deployed unless all pass."""
    console, err = consoles()
    outcomes = check_all(plans, strict=False)
    report(outcomes, Format.human, console, err)
    code = exit_code(outcomes)
    if code != EXIT_OK:
        raise typer.Exit(code)
    if output_dir is not None and prefect_yaml is None:
        raise _fail(err, "--output-dir goes with --prefect-yaml")
    from plan2flow.server.launch import prefect_environment
    from plan2flow.server.local import running

    prefect_environment()
    from plan2flow.server.deployments import DeployError, plan_targets

    local = running()
    compiled = []
    for o in outcomes:
        assert o.result is not None
        compiled.append((str(o.path), o.result.graph, o.result.flow_source))
    targets, problems = plan_targets(
        compiled, param or [], name, pool or (local.pool if local else "plan2flow")
    )
    if problems:
        for line in problems:
            say(err, line)
        raise _fail(err, "nothing was deployed", 1)
    if prefect_yaml is not None:
        _write_prefect_yaml(prefect_yaml, output_dir, targets, console, err)
        return
    api_url = _require_server(err)
    import httpx

    from plan2flow.server.deployments import check_pool
    from plan2flow.server.deployments import deploy as deploy_target
    from plan2flow.server.local import api_settings

    try:
        with api_settings(api_url):
            check_pool(targets[0].pool)
            results = [deploy_target(target) for target in targets]
    except DeployError as error:
        raise _fail(err, str(error)) from None
    except httpx.HTTPError as error:
        raise _fail(err, f"the Prefect server at {api_url} failed: {error}") from None
    ui = _ui_url(api_url)
    for result in results:
        target = result.target
        say(
            console,
            f"{target.source} → deployment {target.full_name}: {result.change} "
            f"(version {target.graph.hash[:19]}…, pool {target.pool})",
        )
        for line in result.details:
            say(console, f"  {line}")
        say(console, f"  {ui}/deployments/deployment/{result.deployment_id}")
        journal(
            err,
            "deploy",
            target.graph.name,
            {
                "deployment": target.full_name,
                "id": str(result.deployment_id),
                "change": result.change,
                "hash": target.graph.hash,
                "pool": target.pool,
                "server": api_url,
            },
        )


def _write_prefect_yaml(
    path: Path, output_dir: Path | None, targets: list[Any], console: Console, err: Console
) -> None:
    from plan2flow.compiler import output_files, write_all_atomic
    from plan2flow.server.prefect_yaml import merge_deployments

    directory = output_dir if output_dir is not None else path.parent
    relative = os.path.relpath(directory.resolve(), path.parent.resolve())
    flows_dir = "" if relative == "." else Path(relative).as_posix()
    try:
        existing = path.read_text(encoding="utf-8") if path.exists() else None
        text = merge_deployments(existing, targets, flows_dir)
    except (OSError, ValueError) as error:
        raise _fail(err, f"{path}: {error}") from None
    writes: list[tuple[Path, str]] = [(path, text)]
    for target in targets:
        writes += output_files(target.graph, target.flow_source, directory)
    try:
        write_all_atomic(writes)
    except OSError as error:
        raise _fail(err, f"cannot write outputs: {describe(error)}") from None
    for target in targets:
        say(console, f"{target.source} → {path}: deployment {target.full_name}")
    say(console, f"deploy with: cd {path.parent} && prefect --no-prompt deploy --all")


def _flow_name(plan: str, err: Console) -> tuple[str, dict[str, Any], list[str]]:
    """A plan file, or a plan's name: the flow's name, the plan's parameter declarations and
    its task ids (both empty when only the name is known)."""
    path = Path(plan)
    if not path.exists():
        if _names_a_file(plan):
            raise _fail(err, f"{plan}: no such file")
        return plan, {}, []
    outcome = check(path, strict=False)
    if outcome.result is None:
        report([outcome], Format.human, Console(), err)
        raise typer.Exit(exit_code([outcome]))
    document = outcome.result.graph.document
    return outcome.result.graph.name, document["params"], [t["id"] for t in document["tasks"]]


def _names_a_file(plan: str) -> bool:
    """Whether PLAN is meant as a file (a path, or a plan or graph file name), not a plan name:
    a missing file must be reported as such, not as a deployment that does not exist."""
    return "/" in plan or os.sep in plan or plan.endswith((".yaml", ".yml", ".json"))


@app.command()
def runs(
    plan: Annotated[
        str | None, typer.Argument(help="A plan file or a plan name [default: every plan].")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 10,
) -> None:
    """List recent runs of deployed plans, newest first, with their states and UI links."""
    console, err = consoles()
    flow_name = _flow_name(plan, err)[0] if plan else None
    api_url = _require_server(err)

    from plan2flow.server.remote import RemoteError, recent_runs

    try:
        found, upcoming = recent_runs(api_url, flow_name, limit)
    except RemoteError as error:
        raise _fail(err, str(error)) from None
    ui = _ui_url(api_url)
    if not found:
        say(console, f"no runs of {flow_name or 'any deployed plan'} yet")
    # Plain columns, links never wrapped: they stay whole in narrow terminals and CI logs.
    for item in found:
        say(
            console,
            f"{item.plan:<20} {item.name:<24} {item.state:<10} "
            f"{item.started or item.scheduled or '':<23} {item.duration:>8}  "
            f"{ui}/runs/flow-run/{item.id}",
        )
    for item in upcoming:
        say(console, f"{item.plan:<20} next scheduled run: {item.scheduled}  ({item.name})")


@app.command()
def trigger(
    plan: Annotated[str, typer.Argument(help="A plan file or a plan name.")],
    param: ParamOpt = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Deployment name [default: the plan's name].")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to finish; exit 1 unless it completes.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait with --wait.")
    ] = 3600,
) -> None:
    """Start a run of a plan's deployment now."""
    console, err = consoles()
    flow_name, declared, task_ids = _flow_name(plan, err)
    api_url = _require_server(err)
    from plan2flow.server.launch import LaunchError, parse_params
    from plan2flow.server.remote import RemoteError, start_run, wait_for_run

    try:
        values = parse_params(param or [], declared or None, require_all=False)
        flow_run = start_run(api_url, f"{flow_name}/{name or flow_name}", values)
    except (LaunchError, RemoteError) as error:
        raise _fail(err, str(error)) from None
    ui = _ui_url(api_url)
    say(console, f"flow run {flow_run.name} ({flow_run.id}) of {flow_name}: {flow_run.state}")
    say(console, f"view it at {ui}/runs/flow-run/{flow_run.id}")
    if not wait:
        return
    try:
        final = wait_for_run(api_url, flow_run.id, timeout, frozenset(task_ids))
    except RemoteError as error:
        raise _fail(err, str(error), 1) from None
    from rich.table import Table

    table = Table("task", "state", title=f"{flow_name}: {final.state}", title_justify="left")
    for task_id, state in final.tasks:
        table.add_row(task_id, state)
    console.print(table, soft_wrap=True)
    raise typer.Exit(EXIT_OK if final.state == "Completed" else 1)
