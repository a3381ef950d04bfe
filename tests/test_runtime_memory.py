"""Runs on top of project memory: every task output is an artifact with its producer, tasks
pass references that another machine can fetch, each run has its row (parameters encrypted
only when keys exist), and the run's events reach the audit journal."""

from __future__ import annotations

import base64
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.flows.artifacts import Artifact
from plan2flow.flows.errors import TaskFailure
from plan2flow.flows.memory_bridge import (
    begin_run,
    close_stores,
    end_run,
    local_input,
    store_outputs,
)
from plan2flow.flows.workspace import RunPlace
from plan2flow.memory.audit import entries, verify
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.db.models import Run

ROOT = Path(__file__).parents[1]
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_stores() -> None:
    """Each test's home has its own database: no store stays open across tests."""
    close_stores()


def _place(home: Path, run_id: str | None = None) -> RunPlace:
    return RunPlace(
        plan="hello",
        graph_hash="sha256:" + "0" * 64,
        flow_run_id=run_id or str(uuid.uuid4()),
        workspace=str(home / "runs" / "w"),
        artifact_root=str(home / "artifacts" / "hello"),
    )


@pytest.mark.slow
def test_a_run_stores_its_outputs_and_journals_its_events(
    run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("PLAN2FLOW_MASTER_KEY", f"k1={key}")
    result = runner.invoke(app, ["run", str(HELLO), "-p", "who=Grace Hopper"])
    assert result.exit_code == 0 and result.exception is None, result.output
    flow_run_id = result.stdout.split("flow run: ")[1].split()[0]

    listed = runner.invoke(app, ["artifacts", "list", "--run", flow_run_id, "--format", "json"])
    assert listed.exit_code == 0 and listed.exception is None, listed.output
    assert '"task_id": "greet"' in listed.stdout and '"name": "greeting"' in listed.stdout
    with configured_database() as database, database.session("default") as session:
        row = session.get(Run, uuid.UUID(flow_run_id))
        assert row is not None and row.state == "completed" and row.ended is not None
        assert row.parameters is not None and b"Grace Hopper" not in row.parameters
        journal = [e.action for e in entries(session, "default")]
        assert verify(session, "default").count == len(journal)
    assert journal.count("artifact.stored") == 2  # greeting and count, once each
    assert "run.started" in journal and journal[-1] == "run.completed"
    assert journal.count("task.completed") == 3
    with sqlite3.connect(run_home / "plan2flow.db") as raw:
        stored = raw.execute("SELECT parameters FROM runs").fetchone()[0]
    assert b"Grace Hopper" not in stored


def test_a_run_that_ends_without_finishing_gets_its_end_once(tmp_path: Path) -> None:
    """A crash or cancellation hook closes the row of a run still running (and its audit feed,
    in the run's own process), from any process; a row closed already keeps its state."""
    home = tmp_path / "home"
    os.environ["PLAN2FLOW_HOME"] = str(home)
    crashed, finished = _place(home), _place(home)
    memory = begin_run(crashed, {"who": "x"}, "ada")
    begin_run(finished, {}, "ada").finish("completed")
    assert memory.feed is not None and not memory.feed.closed
    end_run(crashed, "crashed")
    end_run(crashed, "cancelled")  # a second hook changes nothing
    end_run(finished, "failed")
    end_run(_place(home), "failed")  # no row: nothing to close
    end_run(_place(home, "local-1-2"), "failed")  # a run outside Prefect has no row
    assert memory.feed.closed
    with configured_database() as database, database.session("default") as session:
        states = {
            place: session.get(Run, uuid.UUID(place.flow_run_id)) for place in (crashed, finished)
        }
    assert {place: (row.state if row else None) for place, row in states.items()} == {
        crashed: "crashed",
        finished: "completed",
    }
    assert all(row is not None and row.ended is not None for row in states.values())


def test_outputs_become_artifacts_a_task_elsewhere_fetches(tmp_path: Path) -> None:
    home = tmp_path / "home"
    os.environ["PLAN2FLOW_HOME"] = str(home)
    place = _place(home)
    made = tmp_path / "made" / "report"
    made.mkdir(parents=True)
    (made / "summary.txt").write_text("all green\n")
    report = {"report": made}
    [(name, artifact)] = store_outputs(place, "check", report, {"report": "sha256:x"}).items()
    assert name == "report" and artifact.ref and artifact.path == str(made)

    # Another machine: its own artifact root, without the producer's files.
    elsewhere = _place(tmp_path / "other")
    gone = Artifact(str(tmp_path / "gone" / "key" / "report"), artifact.digest, artifact.ref)
    fetched = local_input(elsewhere, gone)
    assert fetched == Path(elsewhere.artifact_root) / "key" / "report"
    assert (fetched / "summary.txt").read_text() == "all green\n"
    assert local_input(elsewhere, gone) == fetched  # fetched once, then found


def test_an_output_that_cannot_be_stored_fails_its_task(tmp_path: Path) -> None:
    os.environ["PLAN2FLOW_HOME"] = str(tmp_path / "home")
    with pytest.raises(TaskFailure, match="'check': its outputs were not stored: cannot store"):
        store_outputs(_place(tmp_path), "check", {"r": tmp_path / "missing"}, {"r": "sha256:x"})
    unknown = Artifact(str(tmp_path / "nowhere" / "k" / "r"), "sha256:x", str(uuid.uuid4()))
    with pytest.raises(TaskFailure, match="input 'r' could not be fetched"):
        local_input(_place(tmp_path), unknown)


def test_an_input_without_a_reference_is_its_path(tmp_path: Path) -> None:
    before_the_store = Artifact(str(tmp_path / "old" / "k" / "r"), "sha256:x")
    assert local_input(_place(tmp_path), before_the_store) == tmp_path / "old" / "k" / "r"
