"""The chain end to end against real servers on 127.0.0.1: competing variants scored by the tests
they pass, the better kept; tiers handing over; the human tier outside a flow run as a clear
failure (inside one: test_escalation_human*.py); the records in project memory (SQLite here;
PostgreSQL in test_escalation_records.py) and the escalation.* events."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from openai_server import Captured, FakeOpenAI, Reply, Waits, bodies, fake_openai

from plan2flow.agents.code_generator import render_component
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
    EscalationFailed,
    HumanTierReached,
    JournalError,
    Variant,
    escalate,
    records,
)
from plan2flow.events import Event, InProcessBus
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.settings import memory_settings
from plan2flow.memory.tenants import create_tenant, list_tenants

GREET = {
    "name": "greet",
    "signature": "(name: str) -> str",
    "docstring": "A greeting for ada@example.com and everyone else.",
    "examples": [
        {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
        {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
    ],
}
SPEC: dict[str, Any] = {
    "module": "greeter",
    "description": "Greetings.",
    "functions": [GREET],
    "dataclasses": [],
    "imports": [],
}
RIGHT = bodies({"greet": "return f'Hello, {name}!'"})
WRONG = bodies({"greet": "return 'Hello, Ada!'"})
FAST = Weights(types=0.0)  # mypy is measured in test_escalation_scoring; seconds matter here


def render(spec: Mapping[str, Any]) -> dict[str, str]:
    return render_component(dict(spec), "greeter")[1]


def task(spec: dict[str, Any] = SPEC) -> CodeTask:
    return CodeTask("greeter.generate_code", spec, render, plan="demo", flow_run_id="run-1")


def local_variant() -> Variant:
    return Variant("0-local-1", "local", problem="function 'greet' has no body")


def remote(server: FakeOpenAI, **fields: Any) -> Tier:
    return Tier(remote=RemoteTier(base_url=server.url, model="small", **fields))


def policy(*tiers: Tier, **fields: Any) -> EscalationPolicy:
    values: dict[str, Any] = {
        "threshold": 0.8,
        "weights": FAST,
        "allowed_hosts": ["127.0.0.1"],
        **fields,
    }
    return EscalationPolicy(tiers=list(tiers), **values)


def environ(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"PLAN2FLOW_HOME": str(tmp_path / "home"), "PLAN2FLOW_TENANT": "acme", **more}


def run(
    tmp_path: Path,
    the_policy: EscalationPolicy,
    *,
    env: dict[str, str] | None = None,
    bus: InProcessBus | None = None,
    spec: dict[str, Any] = SPEC,
) -> Any:
    env = env or environ(tmp_path)
    settings = memory_settings(env)
    if settings.tenant not in {t.name for t in list_tenants(settings)}:
        create_tenant(settings.tenant, settings)
    return escalate(
        task(spec),
        the_policy,
        workdir=tmp_path / "work",
        local=local_variant(),
        environ=env,
        bus=bus or InProcessBus(),
        sleep=Waits(),
    )


def journal(tmp_path: Path) -> list[Any]:
    """The records of tenant acme in the home's SQLite database."""
    with configured_database(memory_settings(environ(tmp_path))) as database:
        return list(records(database, "acme"))


def drained(subscription: Any) -> list[Event]:
    found = []
    while (event := subscription.get(timeout=0)) is not None:
        found.append(event)
    return found


@pytest.mark.slow
def test_two_variants_compete_and_the_one_passing_the_tests_is_kept(tmp_path: Path) -> None:
    bus = InProcessBus()
    seen = bus.subscribe("plan2flow.>")
    with fake_openai([Reply(content=WRONG), Reply(content=RIGHT)]) as server:
        tiers = (
            Tier(local=LocalTier()),
            remote(server, api_key_env="P2F_KEY"),
            Tier(human=HumanTier()),
        )
        result = run(tmp_path, policy(*tiers), env=environ(tmp_path, P2F_KEY="k-123"), bus=bus)
    assert (result.outcome, result.tier_reached, result.winner.label) == (
        "kept",
        "remote",
        "1-remote-2",
    )
    kept = result.winner.files["greeter.py"]
    assert '    """A greeting for ada@example.com and everyone else."""\n' in kept
    assert "    return f'Hello, {name}!'\n" in kept
    local, wrong, right = result.variants
    assert (local.score, local.problem) == (0.0, "function 'greet' has no body")
    assert wrong.values["tests"] == 0.5 and right.values["tests"] == 1.0
    # The right one passes every test; neither agrees with the other on which.
    assert (right.values["agreement"], wrong.values["agreement"]) == (0.0, 0.0)
    assert right.score > wrong.score and right.score >= 0.8
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer k-123"] * 2
    temperatures = [r.json["temperature"] for r in server.requests]
    assert temperatures == [0.2, 0.8]
    assert all("ada@example.com" not in r.raw.decode() for r in server.requests)
    assert result.redactions == {"EMAIL": 1}

    (record,) = journal(tmp_path)
    assert (record.task_id, record.plan, record.flow_run_id, record.tenant) == (
        "greeter.generate_code",
        "demo",
        "run-1",
        "acme",
    )
    assert (record.outcome, record.winner, record.model, record.redactions) == (
        "kept",
        "1-remote-2",
        "fake-model",
        {"EMAIL": 1},
    )
    assert [v.tests_passed for v in record.variants] == [None, 1, 2]
    assert record.prompt_tokens == 200 and record.completion_tokens == 100
    assert "ada@example.com" not in json.dumps(record.model_dump(mode="json"))

    events = drained(seen)
    assert [e.type.removeprefix("plan2flow.escalation.") for e in events] == [
        "started",
        "variant_scored",
        "variant_scored",
        "variant_scored",
        "finished",
    ]
    assert events[-1].data.record_id == record.id  # type: ignore[union-attr]
    assert {e.subject.split(".")[1] for e in events} == {"acme"}
    assert {e.taskid for e in events} == {"greeter.generate_code"}


@pytest.mark.slow
def test_below_the_threshold_the_chain_reaches_the_human_tier_and_fails(tmp_path: Path) -> None:
    with fake_openai([Reply(content=WRONG)]) as server:
        the_policy = policy(Tier(local=LocalTier()), remote(server), Tier(human=HumanTier()))
        with pytest.raises(HumanTierReached) as caught:
            run(tmp_path, the_policy)
    message = str(caught.value)
    assert "'greeter.generate_code': escalation reached the human tier" in message
    assert "the best variant, 1-remote-1, scores 0.706 < 0.8" in message
    assert "no one can be asked outside a Prefect flow run" in message
    (record,) = journal(tmp_path)
    assert (record.outcome, record.tier_reached, record.winner) == ("failed", "human", None)
    assert caught.value.record_id == record.id and caught.value.exit_status == 1


def test_a_missing_api_key_hands_over_to_the_next_tier(tmp_path: Path) -> None:
    with fake_openai([Reply(content=RIGHT)]) as server:
        the_policy = policy(remote(server, api_key_env="P2F_UNSET_KEY"), Tier(human=HumanTier()))
        with pytest.raises(HumanTierReached, match=r"P2F_UNSET_KEY .*is not set"):
            run(tmp_path, the_policy)
    assert server.requests == []


@pytest.mark.slow
def test_a_long_retry_after_moves_on_to_the_next_remote_tier(tmp_path: Path) -> None:
    busy = [Reply(429, body="{}", headers={"Retry-After": "3600"})]
    with fake_openai(busy) as first, fake_openai([Reply(content=RIGHT)]) as second:
        the_policy = policy(remote(first), remote(second), variants=2)
        result = run(tmp_path, the_policy)
    assert (result.tier_reached, result.winner.label) == ("remote", "1-remote-1")
    assert len(first.requests) == 1 and len(second.requests) == 2
    (failed,) = [v for v in result.variants if v.label.startswith("0-")]
    assert "more than max_retry_after_s" in (failed.problem or "")


CONTACT = {
    "name": "contact",
    "signature": "() -> str",
    "docstring": "",
    "examples": [{"call": "contact()", "returns": "'ada@example.com'"}],
}


def test_a_token_that_does_not_come_back_sends_the_chain_to_a_person(tmp_path: Path) -> None:
    spec = {**SPEC, "functions": [CONTACT]}
    with fake_openai([Reply(content=bodies({"contact": "return 'someone'"}))]) as server:
        the_policy = policy(remote(server), Tier(human=HumanTier()), variants=2)
        with pytest.raises(HumanTierReached, match="token"):
            run(tmp_path, the_policy, spec=spec)
    assert len(server.requests) == 2
    assert all("ada@example.com" not in r.raw.decode() for r in server.requests)


@pytest.mark.slow
def test_a_token_that_comes_back_is_restored_in_the_kept_code(tmp_path: Path) -> None:
    spec = {**SPEC, "functions": [CONTACT]}

    def answer(request: Captured) -> Reply:
        assert "ada@example.com" not in request.raw.decode()
        return Reply(content=bodies({"contact": "return '«EMAIL_1»'"}))

    with fake_openai(answer) as server:
        result = run(tmp_path, policy(remote(server)), spec=spec)
    assert "return 'ada@example.com'" in result.winner.files["greeter.py"]
    assert result.winner.values["tests"] == 1.0


def test_text_that_cannot_be_redacted_is_never_sent(tmp_path: Path) -> None:
    spec = {**SPEC, "description": "Greetings «like this»."}
    with fake_openai([Reply(content=RIGHT)]) as server:
        the_policy = policy(remote(server), Tier(human=HumanTier()))
        with pytest.raises(HumanTierReached, match="redaction failed"):
            run(tmp_path, the_policy, spec=spec)
    assert server.requests == []


def test_the_budget_stops_calls_before_they_are_made(tmp_path: Path) -> None:
    with fake_openai([Reply(content=RIGHT)]) as server:
        the_policy = policy(remote(server, price_per_1k_tokens=1.0), budget_usd=0.001)
        with pytest.raises(EscalationFailed, match="budget") as caught:
            run(tmp_path, the_policy)
    assert server.requests == [] and not isinstance(caught.value, HumanTierReached)
    (record,) = journal(tmp_path)
    assert (record.tier_reached, record.variants, record.cost_usd) == ("remote", [], 0.0)


@pytest.mark.slow
def test_a_local_model_is_asked_without_redaction(tmp_path: Path) -> None:
    with fake_openai([Reply(content=RIGHT)]) as server:
        local = Tier(local=LocalTier(base_url=server.url, model="tiny"))
        result = run(tmp_path, policy(local, allowed_hosts=[]))
    assert (result.tier_reached, result.winner.label) == ("local", "0-local-1")
    assert "ada@example.com" in server.requests[0].json["messages"][1]["content"]


@pytest.mark.slow
def test_invalid_answers_score_zero_and_structured_output_falls_back(tmp_path: Path) -> None:
    refused = Reply(500, body='{"error": {"message": "Input should be \'text\'"}}')
    script = [refused, Reply(content="I cannot do that."), Reply(content=f"```json\n{RIGHT}\n```")]
    with fake_openai(script) as server:
        result = run(tmp_path, policy(remote(server), variants=2))
    first, second = result.variants
    assert "holds no JSON object" in (first.problem or "") and first.score == 0.0
    assert second is result.winner
    assert ["response_format" in r.json for r in server.requests] == [True, False, False]


@pytest.mark.slow
def test_the_journal_never_holds_the_environment(tmp_path: Path) -> None:
    with fake_openai([Reply(content=WRONG)]) as server:
        the_policy = policy(remote(server, api_key_env="P2F_KEY"), variants=2, weights=Weights(
            tests=1.0, parses=0.0, types=0.0, lint=0.0, agreement=0.0))  # fmt: skip
        with pytest.raises(EscalationFailed):
            run(tmp_path, the_policy, env=environ(tmp_path, P2F_KEY="sk-live-0123456789abcdef"))
    (record,) = journal(tmp_path)
    assert "sk-live" not in json.dumps(record.model_dump(mode="json"))
    stored = b"".join(path.read_bytes() for path in (tmp_path / "home").glob("plan2flow.db*"))
    assert b"greeter.generate_code" in stored and b"sk-live" not in stored
    assert os.environ.get("P2F_KEY") is None


def test_an_escalation_that_cannot_be_recorded_fails_with_a_journal_error(tmp_path: Path) -> None:
    """A tenant that project memory does not know: nothing is recorded, so nothing is kept (with
    a remote tier, its outbound host list cannot be read either: nothing is sent)."""
    with fake_openai([Reply(content=RIGHT)]) as server:
        the_policy = policy(remote(server, api_key_env="P2F_UNSET_KEY"), Tier(human=HumanTier()))
        with pytest.raises(
            JournalError,
            match=r"cannot read the outbound host list of tenant 'ghost', so nothing is sent: "
            r".*plan2flow tenants create ghost",
        ):
            escalate(
                task(),
                the_policy,
                workdir=tmp_path / "work",
                local=local_variant(),
                environ={**environ(tmp_path), "PLAN2FLOW_TENANT": "ghost"},
                bus=InProcessBus(),
                sleep=Waits(),
            )
    assert server.requests == []
