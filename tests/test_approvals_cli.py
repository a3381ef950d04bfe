"""`plan2flow approvals list|show|respond` against a real Prefect API: the answers a person
gives from a terminal, refused in plan2flow's words or the server's, the run staying paused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from approvals_support import api_url, flow_run, start_plan, wait_paused
from typer.testing import CliRunner

from plan2flow.cli import app

pytestmark = [pytest.mark.usefixtures("run_home"), pytest.mark.slow]

runner = CliRunner()

TASKS = (
    "  - {id: build, type: noop}\n"
    "  - id: review\n"
    "    type: approval\n"
    "    depends_on: [build]\n"
    "    params:\n"
    "      body: 'Ship **it**?'\n"
    "      options: [ship, hold]\n"
    "      respondents: [alice, bob]\n"
    "      branch: {ship: [ship]}\n"
    "      form:\n"
    "        ticket: {type: string, required: true, description: The change ticket.}\n"
    "        canary: {type: integer, default: 10}\n"
    "  - {id: ship, type: noop, depends_on: [review]}\n"
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> str:
    url = api_url()
    monkeypatch.setenv("PREFECT_API_URL", url)
    return url


def _cli(*args: str) -> object:
    return runner.invoke(app, ["approvals", *args])


def test_list_show_and_respond(tmp_path: Path, run_home: Path, server: str) -> None:
    running = start_plan(tmp_path, "cli-approve", TASKS)
    wait_paused(running)
    listed = runner.invoke(app, ["approvals", "list", "--plan", "cli-approve"])
    assert listed.exit_code == 0, listed.output
    assert (
        f"{running.flow_run_id}  cli-approve/review  Paused  options: ship, hold" in listed.stdout
    )
    other = runner.invoke(app, ["approvals", "list", "--plan", "no-such-plan"])
    assert other.stdout == "no approvals waiting in plan no-such-plan\n"

    shown = runner.invoke(app, ["approvals", "show", running.flow_run_id])
    assert shown.exit_code == 0, shown.output
    for line in (
        "approval review of plan cli-approve (Paused)",
        "options: ship, hold",
        "respondents: alice, bob",
        "field canary: integer, default 10  ",
        "field ticket: string, required  The change ticket.",
        "Ship **it**?",
    ):
        assert line in shown.stdout

    answered = runner.invoke(
        app,
        [
            "approvals",
            "respond",
            running.flow_run_id,
            "--option",
            "ship",
            "--field",
            "ticket=T-9",
            "--field",
            "canary=25",
            "--as",
            "bob",
        ],
    )
    assert answered.exit_code == 0, answered.output
    assert answered.stdout == (
        f"answered cli-approve/review of run {running.flow_run_id}: ship (as bob)\n"
    )
    running.join()
    assert running.states() == {"build": "Completed", "review": "Completed", "ship": "Completed"}
    decision = json.loads(next(run_home.glob("artifacts/*/*/decision")).read_text())
    assert (decision["respondent"], decision["data"]) == ("bob", {"ticket": "T-9", "canary": 25})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--option", "maybe", "--field", "ticket=T", "--as", "alice"],
            "'maybe' is not an option of 'review': ship, hold",
        ),
        (
            ["--option", "ship", "--field", "ticket=T", "--as", "mallory"],
            "'mallory' may not answer 'review': respondents are alice, bob",
        ),
        (
            ["--option", "ship", "--field", "ticket=T", "--field", "canary=many", "--as", "bob"],
            "field 'canary' must be integer; got 'many'",
        ),
        (
            ["--option", "ship", "--field", "tikcet=T", "--as", "bob"],
            "'review' has no field 'tikcet'; its fields: canary, ticket",
        ),
        (
            ["--option", "ship", "--as", "bob"],
            "the server refused the answer: Reason: Validation failed. Failure reason: "
            "'ticket' is a required property",
        ),
    ],
    ids=["option", "respondent", "type", "field", "server"],
)
def test_refused_answers_say_why_and_the_run_stays_paused(
    tmp_path: Path, server: str, args: list[str], message: str
) -> None:
    running = start_plan(tmp_path, "cli-refuse", TASKS)
    wait_paused(running)
    refused = runner.invoke(app, ["approvals", "respond", running.flow_run_id, *args])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == f"plan2flow: {message}; the run stays paused\n"
    assert flow_run(running.flow_run_id)["state"]["type"] == "PAUSED"
    done = runner.invoke(
        app,
        [
            "approvals",
            "respond",
            running.flow_run_id,
            "--option",
            "hold",
            "--field",
            "ticket=T",
            "--as",
            "alice",
        ],
    )
    assert done.exit_code == 0, done.output
    running.join()
    assert running.states()["ship"] == "Skipped"


def test_a_run_without_an_approval_is_refused(server: str) -> None:
    missing = runner.invoke(app, ["approvals", "show", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1
    assert missing.stderr == "plan2flow: no flow run 00000000-0000-0000-0000-000000000000\n"


def test_a_malformed_field_is_a_usage_error(server: str) -> None:
    result = runner.invoke(
        app, ["approvals", "respond", "x", "--option", "ship", "--field", "ticket"]
    )
    assert result.exit_code == 2
    assert result.stderr == "plan2flow: --field takes NAME=VALUE; got 'ticket'\n"
