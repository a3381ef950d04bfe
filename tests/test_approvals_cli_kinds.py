"""Each kind of approval answered from a terminal (`plan2flow approvals respond`) and over
Prefect's REST API, on the tests' real Prefect API: approve and reject with the default
options, a form entry (every field type, defaults filled in), and a deadline with each
`on_timeout`, after which no answer is taken. Options with a form and a branch are in
test_approvals_cli.py and test_approval_runtime.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from approvals_support import RunningFlow, api_url, flow_run, resume, start_plan, wait_paused
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.server.approvals import respondent

pytestmark = [pytest.mark.usefixtures("run_home"), pytest.mark.slow]

runner = CliRunner()

GATE = (
    "  - {id: build, type: noop}\n"
    "  - {id: review, type: approval, depends_on: [build], params: %s}\n"
    "  - {id: ship, type: noop, depends_on: [review]}\n"
    "  - {id: after, type: noop, depends_on: [ship]}\n"
)
ENTRY = (
    "{body: 'Which build goes out?', options: [submit], form: {"
    "version: {type: string, required: true, description: The version to release.}, "
    "replicas: {type: integer, default: 2}, share: {type: number}, "
    "dry_run: {type: boolean, default: false}, "
    "region: {type: enum, values: [eu, us], default: eu}}}"
)


@pytest.fixture(autouse=True)
def server(monkeypatch: pytest.MonkeyPatch) -> str:
    url = api_url()
    monkeypatch.setenv("PREFECT_API_URL", url)
    return url


def _respond(flow_run_id: str, *args: str) -> Any:
    return runner.invoke(app, ["approvals", "respond", flow_run_id, *args])


def _decision(home: Path, running: RunningFlow) -> dict[str, Any]:
    [path] = home.glob("artifacts/*/*/decision")
    data: dict[str, Any] = json.loads(path.read_text())
    assert data["flow_run_id"] == running.flow_run_id
    return data


@pytest.mark.parametrize("how", ["cli", "rest"])
@pytest.mark.parametrize(
    ("option", "downstream"), [("approve", "Completed"), ("reject", "Skipped")]
)
def test_approve_runs_and_reject_skips_the_downstream_tasks(
    tmp_path: Path, run_home: Path, how: str, option: str, downstream: str
) -> None:
    running = start_plan(tmp_path, f"{how}-{option}", GATE % "{}")
    wait_paused(running)
    if how == "cli":
        answered = _respond(running.flow_run_id, "--option", option)  # as the OS user
        assert answered.exit_code == 0, answered.output
        who = respondent(None)
        assert answered.stdout.endswith(f": {option} (as {who})\n")
    else:
        who = "rest-client"
        answer = {"option": option, "respondent": who}
        assert resume(running.flow_run_id, answer)["status"] == "ACCEPT"
    running.join()
    assert running.state.is_completed() and running.summary.ok
    assert running.states() == {
        "build": "Completed",
        "review": "Completed",
        "ship": downstream,
        "after": downstream,
    }
    decision = _decision(run_home, running)
    assert (decision["option"], decision["respondent"], decision["timed_out"]) == (
        option,
        who,
        False,
    )
    assert decision["skipped"] == ([] if option == "approve" else ["ship"])


@pytest.mark.parametrize("how", ["cli", "rest"])
def test_a_form_entry_is_typed_and_completed_by_its_defaults(
    tmp_path: Path, run_home: Path, how: str
) -> None:
    running = start_plan(tmp_path, f"{how}-entry", GATE % ENTRY)
    wait_paused(running)
    if how == "cli":
        shown = runner.invoke(app, ["approvals", "show", running.flow_run_id])
        assert "options: submit" in shown.stdout
        assert "field region: enum one of eu, us, default 'eu'" in shown.stdout
        assert "field version: string, required  The version to release." in shown.stdout
        fields = ["version=1.4.2", "share=0.25", "dry_run=true", "region=us"]
        answered = _respond(
            running.flow_run_id,
            "--option",
            "submit",
            *[arg for field in fields for arg in ("--field", field)],
            "--as",
            "erin",
        )
        assert answered.exit_code == 0, answered.output
    else:
        answer = {"option": "submit", "respondent": "erin", "version": "1.4.2"}
        answer |= {"share": 0.25, "dry_run": True, "region": "us"}
        assert resume(running.flow_run_id, answer)["status"] == "ACCEPT"
    running.join()
    assert running.states()["after"] == "Completed"
    assert _decision(run_home, running)["data"] == {
        "version": "1.4.2",
        "replicas": 2,
        "share": 0.25,
        "dry_run": True,
        "region": "us",
    }


@pytest.mark.parametrize(
    ("on_timeout", "state", "ship"),
    [("hold", "COMPLETED", "Skipped"), ("fail", "FAILED", "UpstreamFailed")],
)
def test_after_the_deadline_answered_no_answer_is_taken(
    tmp_path: Path, run_home: Path, on_timeout: str, state: str, ship: str
) -> None:
    params = (
        "{options: [ship, hold], branch: {ship: [ship]}, timeout_seconds: 3, "
        f"on_timeout: {on_timeout}}}"
    )
    running = start_plan(tmp_path, f"late-{on_timeout}", GATE % params)
    wait_paused(running)
    listed = runner.invoke(app, ["approvals", "list", "--plan", f"late-{on_timeout}"])
    assert f"{running.flow_run_id}  late-{on_timeout}/review  Paused" in listed.stdout
    running.join()
    assert flow_run(running.flow_run_id)["state"]["type"] == state
    assert running.states()["ship"] == ship
    late = _respond(running.flow_run_id, "--option", "ship", "--as", "alice")
    assert late.exit_code == 1
    assert late.stderr.startswith(
        f"plan2flow: flow run {running.flow_run_id} is not waiting for an approval ("
    )
    assert "stays paused" not in late.stderr
    over_rest = resume(running.flow_run_id, {"option": "ship", "respondent": "alice"})
    assert over_rest["status"] != "ACCEPT"
    assert flow_run(running.flow_run_id)["state"]["type"] == state
    listed = runner.invoke(app, ["approvals", "list", "--plan", f"late-{on_timeout}"])
    assert running.flow_run_id not in listed.stdout
    if on_timeout == "hold":
        decision = _decision(run_home, running)
        assert (decision["option"], decision["timed_out"]) == ("hold", True)
