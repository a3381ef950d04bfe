"""The human tier of the chain with a scripted desk (the Prefect pause is in
test_escalation_human_runtime.py): accept keeps the best variant, edit keeps the person's code
once it parses and is scored, reject and the deadline fail naming the tier and the person, retry
runs the model tiers again, and the answers are bounded, recorded, audited and published."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from openai_server import Reply, Waits, bodies, fake_openai

from plan2flow.agents.code_generator import render_component
from plan2flow.compiler import compile_plan, graph_file_name
from plan2flow.compiler.spec.escalation import (
    EscalationPolicy,
    HumanTier,
    LocalTier,
    RemoteTier,
    Tier,
    Weights,
)
from plan2flow.escalation import (
    CodeTask,
    HumanAnswer,
    HumanQuestion,
    HumanTierReached,
    Variant,
    escalate,
    records,
    use_desk,
)
from plan2flow.escalation.human import ROUNDS, describe, edit_problem
from plan2flow.events import InProcessBus
from plan2flow.flows.graph import read_graph
from plan2flow.flows.plan_artifacts import plan_markdown
from plan2flow.memory import audit
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.settings import memory_settings
from plan2flow.memory.tenants import create_tenant

SPEC: dict[str, Any] = {
    "module": "greeter",
    "description": "Greetings.",
    "functions": [
        {
            "name": "greet",
            "signature": "(name: str) -> str",
            "docstring": "A greeting for ada@example.com and everyone else.",
            "examples": [
                {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
                {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
            ],
        }
    ],
    "dataclasses": [],
    "imports": [],
}
RIGHT = bodies({"greet": "return f'Hello, {name}!'"})
WRONG = bodies({"greet": "return 'Hello, Ada!'"})
EDITED = "def greet(name: str) -> str:\n    return 'Hello, ' + name + '!'\n"


class Desk:
    """Answers from a list, and keeps every question."""

    def __init__(self, *answers: HumanAnswer | None) -> None:
        self.answers = list(answers)
        self.questions: list[HumanQuestion] = []

    def ask(self, question: HumanQuestion) -> HumanAnswer | None:
        self.questions.append(question)
        return self.answers.pop(0)


def render(spec: Mapping[str, Any]) -> dict[str, str]:
    return render_component(dict(spec), "greeter")[1]


def environ(tmp_path: Path) -> dict[str, str]:
    return {"PLAN2FLOW_HOME": str(tmp_path / "home"), "PLAN2FLOW_TENANT": "acme"}


def run(tmp_path: Path, url: str, desk: Desk, bus: InProcessBus | None = None) -> Any:
    env = environ(tmp_path)
    create_tenant("acme", memory_settings(env))
    policy = EscalationPolicy(
        threshold=0.8,
        weights=Weights(types=0.0),
        allowed_hosts=["127.0.0.1"],
        tiers=[
            Tier(local=LocalTier()),
            Tier(remote=RemoteTier(base_url=url, model="small")),
            Tier(human=HumanTier(timeout_s=30)),
        ],
    )
    task = CodeTask("greeter.generate_code", SPEC, render, plan="demo", flow_run_id="run-1")
    with use_desk(desk):
        return escalate(
            task,
            policy,
            workdir=tmp_path / "work",
            local=Variant("0-local-1", "local", problem="function 'greet' has no body"),
            environ=env,
            bus=bus or InProcessBus(),
            sleep=Waits(),
        )


def journal(tmp_path: Path) -> list[Any]:
    with configured_database(memory_settings(environ(tmp_path))) as database:
        return list(records(database, "acme"))


def audited(tmp_path: Path) -> list[Any]:
    settings = memory_settings(environ(tmp_path))
    with configured_database(settings) as database, database.session("acme") as session:
        return [
            (e.actor, e.detail)
            for e in audit.entries(session, "acme")
            if e.action == "escalation.recorded"
        ]


@pytest.mark.slow
def test_accept_keeps_the_best_variant_and_records_who(tmp_path: Path) -> None:
    bus = InProcessBus()
    subscription = bus.subscribe("plan2flow.>")
    desk = Desk(HumanAnswer("accept", "alice", comment="good enough"))
    with fake_openai([Reply(content=WRONG)]) as server:
        result = run(tmp_path, server.url, desk, bus)
    assert (result.outcome, result.tier_reached, result.winner.label) == (
        "kept",
        "human",
        "1-remote-1",
    )
    (question,) = desk.questions
    assert "scores 0.706 < 0.8" in question.reason and question.best == "1-remote-1"
    assert "ada@example.com" not in (question.best_code or "")  # redacted values stay redacted
    assert "«EMAIL_1»" in (question.best_code or "")
    (record,) = journal(tmp_path)
    assert (record.outcome, record.tier_reached, record.winner) == ("kept", "human", "1-remote-1")
    assert "accepted at the human tier by 'alice' (good enough)" in record.reason
    ((who, detail),) = audited(tmp_path)
    assert who == "alice"
    assert detail["human"] == [
        {
            "round": 1,
            "decision": "accept",
            "respondent": "alice",
            "comment": "good enough",
            "outcome": "kept",
            "kept": "1-remote-1",
            "note": None,
        }
    ]
    events = []
    while (event := subscription.get(timeout=0)) is not None:
        if event.type.startswith("plan2flow.escalation."):
            events.append(event.type.rsplit(".", 1)[-1])
    assert events[-3:] == ["human_requested", "human_answered", "finished"]


@pytest.mark.slow
def test_an_unparseable_edit_is_asked_again_then_a_good_edit_is_scored_and_kept(
    tmp_path: Path,
) -> None:
    desk = Desk(
        HumanAnswer("edit", "bob", code="def greet(name:\n"),
        HumanAnswer("edit", "bob", code=EDITED),
    )
    with fake_openai([Reply(content=WRONG)]) as server:
        result = run(tmp_path, server.url, desk)
    _, second = desk.questions
    assert second.note == (
        "the edit of 'bob' is refused: the code does not parse: line 1: '(' was never closed"
    )
    assert (result.winner.label, result.winner.tier) == ("h2-human", "human")
    assert result.winner.files["greeter.py"] == EDITED
    values = result.winner.values  # scored by the same signals as the models' variants
    assert (values["tests"], values["parses"], values["lint"]) == (1.0, 1.0, 1.0)
    assert [s.outcome for s in result.human] == ["refused", "kept"]
    written = tmp_path / "work" / "variants" / "h2-human" / "greeter.py"
    assert written.read_text() == EDITED  # as data, in the escalation's own directory


@pytest.mark.slow
def test_reject_fails_naming_the_tier_and_the_person(tmp_path: Path) -> None:
    desk = Desk(HumanAnswer("reject", "carol", comment="not this"))
    with fake_openai([Reply(content=WRONG)]) as server, pytest.raises(HumanTierReached) as caught:
        run(tmp_path, server.url, desk)
    assert "escalation reached the human tier" in str(caught.value)
    assert "rejected at the human tier by 'carol' (not this)" in str(caught.value)
    (record,) = journal(tmp_path)
    assert (record.outcome, record.tier_reached) == ("failed", "human")


@pytest.mark.slow
def test_retry_runs_the_model_tiers_again(tmp_path: Path) -> None:
    desk = Desk(HumanAnswer("retry", "dan"))
    with fake_openai([Reply(content=WRONG), Reply(content=WRONG), Reply(content=RIGHT)]) as server:
        result = run(tmp_path, server.url, desk)
        assert len(server.requests) == 4  # two variants, then two again
    assert (result.outcome, result.tier_reached, result.winner.label) == (
        "kept",
        "remote",
        "1-remote-1-r1",
    )
    assert [s.decision for s in result.human] == ["retry"]


@pytest.mark.slow
def test_no_answer_in_time_fails_and_answers_are_bounded(tmp_path: Path) -> None:
    with fake_openai([Reply(content=WRONG)]) as server:
        with pytest.raises(HumanTierReached, match=r"no one answered within 30 s \(the human"):
            run(tmp_path, server.url, Desk(None))
        desk = Desk(*[HumanAnswer("edit", "eve")] * ROUNDS)
        with pytest.raises(HumanTierReached, match=f"after {ROUNDS} answers"):
            run(tmp_path / "again", server.url, desk)
    assert desk.questions[-1].note == (
        "the edit of 'eve' is refused: an edit needs the code (the form's `code` field)"
    )


def test_the_form_text_shows_the_scores_and_the_code_in_a_fence_that_holds() -> None:
    question = HumanQuestion(
        task_id="t.generate_code",
        plan="p",
        module="m",
        reason="below the threshold",
        threshold=0.8,
        variants=(),
        best="1-remote-1",
        best_code="x = '```'\n" + "y = 1\n" * 300,
        round=2,
        note="asked again",
        timeout_s=5,
        mode="pause",
    )
    text = describe(question, "run-9")
    assert "````python\nx = '```'" in text and "(101 more lines not shown)" in text
    assert "**Asked again (answer 2):** asked again" in text
    assert "plan2flow approvals respond run-9 --option edit" in text
    nothing = describe(
        HumanQuestion("t", "p", "m", "why", 0.8, (), None, None, 1, None, 5, "pause"), "r"
    )
    assert "`accept` is not possible" in nothing
    assert edit_problem("x" * 300_000) == "the code is longer than 200000 characters"
    assert (edit_problem("\0") or "").startswith("the code does not parse")


def test_the_plan_artifact_lists_the_escalation_points(tmp_path: Path) -> None:
    text = (
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: points}\n"
        "defaults:\n  escalation:\n    threshold: 0.9\n"
        "    tiers: [{local: {}}, {human: {respondents: [alice, bob]}}]\n"
        "components:\n  - name: greeter\n    spec:\n      functions:\n"
        "        - {name: greet, signature: '() -> str'}\n"
    )
    path = tmp_path / graph_file_name("points")
    path.write_text(compile_plan(text, "plan.yaml").graph.text, "utf-8")
    markdown = plan_markdown(read_graph(path))
    assert (
        "## Escalation points\n\n| task | tiers | threshold | who answers the human tier |\n"
        "|---|---|---|---|\n| `greeter.generate_code` | local → human | 0.9 | alice, bob |\n"
    ) in markdown
    assert markdown.index("## Escalation points") < markdown.index("## Tasks")
