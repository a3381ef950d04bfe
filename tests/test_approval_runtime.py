"""Approval tasks on a real Prefect API: the flow pauses with the task's form, the answer
(through Prefect's REST API here; the CLI in test_approvals_cli.py) becomes the decision
artifact, and the tasks it does not choose end Skipped while the flow completes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from approvals_support import (
    RunningFlow,
    api_url,
    flow_run,
    poll,
    resume,
    start_plan,
    wait_paused,
)
from prefect_events import Subscription

from plan2flow.events import process_bus
from plan2flow.flows.pausing import PAUSE_GRACE_SECONDS

pytestmark = [pytest.mark.usefixtures("run_home"), pytest.mark.slow]


def _tasks(params: str, *, downstream: str = "") -> str:
    return (
        "  - {id: build, type: noop}\n"
        f"  - {{id: review, type: approval, depends_on: [build], params: {params}}}\n"
        "  - id: ship\n"
        "    type: shell\n"
        "    inputs: {decision: review.decision}\n"
        "    params: {argv: [cat, '${{ inputs.decision }}']}\n"
        "  - {id: after_ship, type: noop, depends_on: [ship]}\n" + downstream
    )


def _decision(running: RunningFlow, home: Path) -> dict[str, object]:
    found = sorted(home.glob("artifacts/*/*/decision"))
    assert len(found) == 1, found
    data: dict[str, object] = json.loads(found[0].read_text())
    assert data["flow_run_id"] == running.flow_run_id
    return data


def test_approve_runs_downstream_with_the_decision(tmp_path: Path, run_home: Path) -> None:
    running = start_plan(tmp_path, "approve", _tasks("{respondents: [alice]}"))
    paused = wait_paused(running)
    assert paused["state"]["state_details"]["pause_key"].startswith("approval-review-")
    answer = resume(running.flow_run_id, {"option": "approve", "respondent": "alice"})
    assert answer["status"] == "ACCEPT"
    running.join()
    assert running.state.is_completed()
    assert running.states() == {
        "build": "Completed",
        "review": "Completed",
        "ship": "Completed",
        "after_ship": "Completed",
    }
    decision = _decision(running, run_home)
    assert decision["option"] == "approve" and decision["respondent"] == "alice"
    assert decision["skipped"] == [] and decision["timed_out"] is False
    artifacts = _artifacts(running.flow_run_id)
    plan = artifacts["plan2flow-plan-approve"]
    assert plan["type"] == "markdown"
    assert "| `review` | approve, reject | alice | pause |" in plan["data"]
    assert "| `ship` | shell | `review` |" in plan["data"]
    outcome = json.loads(artifacts["plan2flow-outcome-approve"]["data"])
    assert [(row["task"], row["state"]) for row in outcome] == [
        ("build", "Completed"),
        ("review", "Completed"),
        ("ship", "Completed"),
        ("after_ship", "Completed"),
    ]


def _artifacts(flow_run_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.post(
        f"{api_url()}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=10,
    )
    response.raise_for_status()
    return {item["key"]: item for item in response.json()}


def test_reject_skips_downstream_and_the_flow_completes(tmp_path: Path, run_home: Path) -> None:
    running = start_plan(tmp_path, "reject", _tasks("{}"))
    wait_paused(running)
    resume(running.flow_run_id, {"option": "reject", "respondent": "bob"})
    running.join()
    assert running.state.is_completed()
    assert running.summary.ok
    assert running.states() == {
        "build": "Completed",
        "review": "Completed",
        "ship": "Skipped",
        "after_ship": "Skipped",
    }
    assert _decision(running, run_home)["skipped"] == ["ship"]
    assert flow_run(running.flow_run_id)["state"]["type"] == "COMPLETED"


def test_an_invalid_answer_is_refused_and_the_run_stays_paused(tmp_path: Path) -> None:
    params = (
        "{options: [ship, hold], respondents: [alice], "
        "form: {ticket: {type: string, required: true}}}"
    )
    running = start_plan(tmp_path, "invalid", _tasks(params))
    wait_paused(running)
    refused = [
        resume(running.flow_run_id, {"option": "maybe", "respondent": "alice", "ticket": "T-1"}),
        resume(running.flow_run_id, {"option": "ship", "respondent": "mallory", "ticket": "T-1"}),
        resume(running.flow_run_id, {"option": "ship", "respondent": "alice"}),
    ]
    assert [r["status"] for r in refused] == ["REJECT"] * 3
    assert "'maybe' is not one of ['ship', 'hold']" in refused[0]["details"]["reason"]
    assert "'ticket' is a required property" in refused[2]["details"]["reason"]
    assert flow_run(running.flow_run_id)["state"]["type"] == "PAUSED"
    answer = {"option": "ship", "respondent": "alice", "ticket": "T-1"}
    accepted = resume(running.flow_run_id, answer)
    assert accepted["status"] == "ACCEPT"
    running.join()
    assert running.states()["ship"] == "Completed"


FORM = (
    "{options: [ship, hold], form: {ticket: {type: string, required: true}, "
    "risk: {type: enum, values: [low, high], default: low}, "
    "canary: {type: integer, default: 10}, share: {type: number}, dry: {type: boolean}}}"
)


def test_options_and_form_become_the_decision(tmp_path: Path, run_home: Path) -> None:
    running = start_plan(tmp_path, "form", _tasks(FORM))
    wait_paused(running)
    answer = {"option": "hold", "respondent": "carol", "ticket": "T-7", "risk": "high"}
    answer |= {"share": 0.5, "dry": True}
    assert resume(running.flow_run_id, answer)["status"] == "ACCEPT"
    running.join()
    decision = _decision(running, run_home)
    assert decision["option"] == "hold"
    assert decision["data"] == {
        "ticket": "T-7",
        "risk": "high",
        "canary": 10,
        "share": 0.5,
        "dry": True,
    }
    assert running.states()["ship"] == "Completed"  # no branch: only `reject` skips


BRANCH = "{options: [ship, undo], branch: {ship: [ship], undo: [rollback]}}"
ROLLBACK = "  - {id: rollback, type: noop, depends_on: [review]}\n"


@pytest.mark.parametrize(
    ("option", "ran", "skipped"),
    [
        ("ship", ["ship", "after_ship"], ["rollback"]),
        ("undo", ["rollback"], ["ship", "after_ship"]),
    ],
)
def test_branch_runs_the_chosen_tasks_only(
    tmp_path: Path, option: str, ran: list[str], skipped: list[str]
) -> None:
    running = start_plan(tmp_path, "branch", _tasks(BRANCH, downstream=ROLLBACK))
    wait_paused(running)
    resume(running.flow_run_id, {"option": option, "respondent": "dan"})
    running.join()
    assert running.state.is_completed() and running.summary.ok
    states = running.states()
    assert [task for task in sorted(states) if states[task] == "Skipped"] == sorted(skipped)
    assert all(states[task] == "Completed" for task in ran)


def test_timeout_answers_with_its_option(tmp_path: Path, run_home: Path) -> None:
    params = "{options: [ship, hold], branch: {ship: [ship]}, timeout_seconds: 2, on_timeout: hold}"
    running = start_plan(tmp_path, "late", _tasks(params))
    running.join()
    assert running.state.is_completed(), running.state
    assert running.states()["ship"] == "Skipped"
    decision = _decision(running, run_home)
    assert (decision["option"], decision["timed_out"], decision["respondent"]) == (
        "hold",
        True,
        None,
    )
    assert flow_run(running.flow_run_id)["state"]["type"] == "COMPLETED"
    # The server never failed the run for its expired pause: the task ended the pause itself,
    # and the Paused state would have expired only PAUSE_GRACE_SECONDS later.
    history = _states(running.flow_run_id)
    assert "FAILED" not in [state["type"] for state in history]
    paused = next(state for state in history if state["type"] == "PAUSED")
    expires = dt.datetime.fromisoformat(paused["state_details"]["pause_timeout"])
    since = dt.datetime.fromisoformat(paused["timestamp"])
    assert (expires - since).total_seconds() >= PAUSE_GRACE_SECONDS


def _states(flow_run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{api_url()}/flow_run_states/", params={"flow_run_id": flow_run_id}, timeout=30
    )
    response.raise_for_status()
    states: list[dict[str, Any]] = response.json()
    return states


def test_timeout_fails_the_approval_with_on_timeout_fail(tmp_path: Path) -> None:
    running = start_plan(tmp_path, "late-fail", _tasks("{timeout_seconds: 2}"))
    running.join()
    assert running.state.is_failed()
    assert running.states() == {
        "build": "Completed",
        "review": "Failed",
        "ship": "UpstreamFailed",
        "after_ship": "UpstreamFailed",
    }
    review = next(task for task in running.summary.tasks if task.id == "review")
    assert review.message == "approval 'review' was not answered within 2 s"


def _prefect_events(
    stream: Subscription, flow_run_id: str, expected: set[str]
) -> dict[str, dict[str, Any]]:
    """The run's plan2flow.approval.* and task.skipped Prefect events, once all arrived."""
    related = f"prefect.flow-run.{flow_run_id}"

    def found() -> dict[str, dict[str, Any]] | None:
        events = {
            e["event"]: e
            for e in stream.events()
            if any(r["prefect.resource.id"] == related for r in e["related"])
        }
        return events if set(events) >= expected else None

    result: dict[str, dict[str, Any]] = poll("the Prefect events", found)
    return result


def test_requests_and_answers_are_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAN2FLOW_EVENTS_URL", raising=False)
    monkeypatch.delenv("PLAN2FLOW_EVENTS", raising=False)
    subscription = process_bus().subscribe("plan2flow.*.published.>")
    try:
        with Subscription(["plan2flow.approval.", "plan2flow.task.skipped"]) as stream:
            running = start_plan(tmp_path, "published", _tasks("{respondents: [erin]}"))
            wait_paused(running)
            resume(running.flow_run_id, {"option": "reject", "respondent": "erin"})
            running.join()
            seen = {}
            while {"approval.given", "task.skipped"} - set(seen):
                event = subscription.get(timeout=30)
                assert event is not None, sorted(seen)
                seen[event.type.removeprefix("plan2flow.")] = event
            mirrored = _prefect_events(
                stream,
                running.flow_run_id,
                {
                    "plan2flow.approval.requested",
                    "plan2flow.approval.given",
                    "plan2flow.task.skipped",
                },
            )
    finally:
        subscription.close()
    requested = seen["approval.requested"]
    assert (requested.taskid, requested.data.options) == ("review", ["approve", "reject"])
    given = seen["approval.given"]
    assert (given.data.option, given.data.respondent, given.data.skipped) == (
        "reject",
        "erin",
        ["ship"],
    )
    assert seen["task.skipped"].data.message == "skipped: 'review' was answered 'reject' by 'erin'"
    resource = mirrored["plan2flow.approval.given"]["resource"]
    assert resource["prefect.resource.id"] == "plan2flow.approval.published.review"
