"""`plan2flow agents`: register (idempotent), list, health, unregister, on a real Prefect API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plan2flow.agents import AGENTS
from plan2flow.compiler.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_environment(run_home: Path) -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_register_is_idempotent_and_list_shows_every_agent() -> None:
    first = runner.invoke(app, ["agents", "register"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["agents", "register"])
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [f"{slug}: unchanged" for slug in sorted(AGENTS)]
    listed = runner.invoke(app, ["agents", "list"])
    assert listed.exit_code == 0, listed.output
    for slug in AGENTS:
        assert slug in listed.stdout
    assert "default" in listed.stdout and "unhealthy" not in listed.stdout


def test_health_reports_every_agent() -> None:
    result = runner.invoke(app, ["agents", "health"])
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted(f"{slug}: ok" for slug in AGENTS)


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
