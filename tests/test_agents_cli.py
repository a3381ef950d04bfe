"""`plan2flow agents`: register (idempotent), list, health, unregister, on a real Prefect API.

A Prefect API of the module's own: unregistering an agent on the session's would take its
blocks away from the runs of the other xdist workers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from plan2flow.agents import AGENTS
from plan2flow.cli import app
from plan2flow.memory.audit import entries
from plan2flow.memory.db.engine import configured_database

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("own_prefect_api", "run_home", "restore_environment")


def test_register_is_idempotent_and_list_shows_every_agent() -> None:
    first = runner.invoke(app, ["agents", "register"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["agents", "register"])
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [f"{slug}: unchanged" for slug in sorted(AGENTS)]
    with configured_database() as database, database.session("default") as session:
        journaled = [(e.subject, e.detail["change"]) for e in entries(session, "default")]
    # One entry per agent and registration, in order: the second registration changed nothing.
    assert [slug for slug, _ in journaled] == sorted(AGENTS) * 2
    assert [change for _, change in journaled[len(AGENTS) :]] == ["unchanged"] * len(AGENTS)
    listed = runner.invoke(app, ["agents", "list"])
    assert listed.exit_code == 0, listed.output
    for slug in AGENTS:
        assert slug in listed.stdout
    assert "default" in listed.stdout and "unhealthy" not in listed.stdout


def test_health_reports_every_agent() -> None:
    result = runner.invoke(app, ["agents", "health"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted(f"{slug}: ok" for slug in AGENTS)


def test_health_of_unregistered_agents_checks_their_defaults() -> None:
    for slug in AGENTS:
        assert runner.invoke(app, ["agents", "unregister", slug]).exit_code == 0
    result = runner.invoke(app, ["agents", "health"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted(f"{slug}: ok" for slug in AGENTS)
    listed = runner.invoke(app, ["agents", "list"])
    assert listed.exit_code == 0, listed.output


@pytest.mark.slow
def test_unregister_removes_an_agent_and_names_unknown_ones() -> None:
    runner.invoke(app, ["agents", "register"])
    removed = runner.invoke(app, ["agents", "unregister", "deployer"])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == "plan2flow-deployer: unregistered\n"
    gone = runner.invoke(app, ["agents", "unregister", "plan2flow-deployer"])
    assert gone.stdout == "plan2flow-deployer: not registered\n"
    unknown = runner.invoke(app, ["agents", "unregister", "nobody"])
    assert unknown.exit_code == 2
    assert "no agent named 'nobody'" in unknown.stderr
    again = runner.invoke(app, ["agents", "register"])
    assert "plan2flow-deployer: registered" in again.stdout


def test_health_exports_prometheus_metrics() -> None:
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(app, ["agents", "health", "--metrics-port", str(port)])
    assert result.exit_code == 0, result.output
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for slug in AGENTS:
        assert f'plan2flow_agent_up{{agent="{slug}"}} 1.0' in text
        assert f'plan2flow_agent_health_latency_seconds{{agent="{slug}"}}' in text


def test_the_health_check_runs_as_a_prefect_flow() -> None:
    from plan2flow.server.health import check_agents

    state = check_agents(return_state=True)
    assert state.is_completed()
    results = state.result()
    assert sorted(r["agent"] for r in results) == sorted(AGENTS)
    assert all(r["healthy"] for r in results)
