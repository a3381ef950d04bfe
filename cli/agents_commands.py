"""`plan2flow agents ...`: register, list, unregister and health-check the agent blocks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, NoReturn

import typer

from .app import EXIT_USAGE, NO_SERVER, app, consoles, say
from .journal import journal

agents_app = typer.Typer(
    help="The agents that run the software-factory task types (Prefect Blocks).",
    no_args_is_help=True,
)
app.add_typer(agents_app, name="agents")


def _agents_env() -> str:
    """Set up Prefect's environment and return the server's API URL, or stop: without a server
    Prefect would use a temporary database of its own, and every change would be lost."""
    from plan2flow.server.launch import prefect_environment

    prefect_environment()
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value() or "")
    if not api_url:
        _stop(NO_SERVER)
    return api_url


def _stop(message: str) -> NoReturn:
    say(consoles()[1], f"plan2flow: {message}")
    raise typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def _reaching(api_url: str) -> Iterator[None]:
    """A server that is down or failing ends the command in one line."""
    import httpx

    try:
        yield
    except httpx.HTTPError as error:
        _stop(f"cannot reach the Prefect server at {api_url}: {error}")


@agents_app.command("register")
def agents_register() -> None:
    """Register every agent block type and its `default` document (idempotent)."""
    api_url = _agents_env()
    from plan2flow.agents.registry import register_all

    console, err = consoles()
    with _reaching(api_url):
        changes = register_all()
    for slug, change in changes:
        say(console, f"{slug}: {change}")
        journal(err, "agent.registered", slug, {"change": change, "server": api_url})


@agents_app.command("list")
def agents_list() -> None:
    """Show every agent: task types, documents on the server, health."""
    api_url = _agents_env()
    from rich.table import Column, Table

    from plan2flow.agents.registry import statuses

    console, _ = consoles()
    import datetime

    table = Table("task types", "documents", "health", "latency", "checked")
    table.columns.insert(0, Column("agent", no_wrap=True))
    with _reaching(api_url):
        found = statuses()
    for item in found:
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
    api_url = _agents_env()
    from plan2flow.agents.registry import unregister

    console, _ = consoles()
    try:
        with _reaching(api_url):
            done = unregister(name)
    except KeyError as error:
        _stop(error.args[0])
    say(console, done)


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
    api_url = _agents_env()
    import time

    from prometheus_client import start_http_server

    from plan2flow.server.health import check_agents

    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1")
    if serve:
        check_agents.serve(name="every-30s", interval=interval)
        return
    console, _ = consoles()
    while True:
        with _reaching(api_url):
            results = check_agents.fn()
        for item in results:
            state = "ok" if item["healthy"] else f"unhealthy: {item['detail']}"
            say(console, f"{item['agent']}: {state}")
        if not watch:
            raise typer.Exit(0 if all(i["healthy"] for i in results) else 1)
        time.sleep(interval)
