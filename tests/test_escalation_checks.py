"""Validate and test failures feed the chain: with an escalation policy, the code generator runs
the checks of the validate and test tasks that take its code; template code failing them goes to
the chain with their output, no variant failing them is kept, and the flow's validate and test
tasks get code that passes. Against the scripted OpenAI-compatible server on 127.0.0.1, with the
records in project memory on SQLite and PostgreSQL (as the application role)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memory_pg import MemoryPostgres, create_tenants, unique_tenant
from openai_server import Reply, bodies, fake_openai
from support import build_module, import_flow

from plan2flow.agents import AgentRequest, CodeGeneratorAgent, Outcome
from plan2flow.compiler.spec.escalation import (
    EscalationPolicy,
    HumanTier,
    LocalTier,
    RemoteTier,
    Tier,
    Weights,
    policy_record,
)
from plan2flow.escalation import EscalationRecord, records
from plan2flow.flows import runtime
from plan2flow.flows.graph import read_graph
from plan2flow.memory.db.engine import configured_database

RIGHT_BODY = "return f'Hello, {name}!'"
WRONG_BODY = "return 'Hello, Ada!'"
UNUSED_BODY = "unused = name.upper()\nreturn f'Hello, {name}!'"
CHECKS = [
    {"type": "validate", "params": {"ruff": True, "mypy": False}},
    {"type": "test", "params": {"args": [], "python": None}},
]


def spec(body: str | None) -> dict[str, Any]:
    return {
        "module": "greeter",
        "functions": [
            {
                "name": "greet",
                "signature": "(name: str) -> str",
                "body": body,
                "examples": [
                    {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
                    {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
                ],
            }
        ],
    }


def policy(url: str, **weights: float) -> dict[str, Any]:
    tiers = [
        Tier(local=LocalTier()),
        Tier(remote=RemoteTier(base_url=url, model="small", api_key_env="P2F_TEST_KEY")),
        Tier(human=HumanTier()),
    ]
    return policy_record(
        EscalationPolicy(
            threshold=0.8,
            tiers=tiers,
            allowed_hosts=["127.0.0.1"],
            weights=Weights(types=0, **weights),
        )
    )


def request(tmp_path: Path, body: str | None, escalation: dict[str, Any]) -> AgentRequest:
    (tmp_path / "work").mkdir(exist_ok=True)
    return AgentRequest(
        task_id="greeter.generate_code",
        task_type="generate_code",
        params={"language": "python", "spec": spec(body)},
        outputs={"code": str(tmp_path / "code")},
        workspace=str(tmp_path / "work"),
        correlation_id="run-9",
        escalation=escalation,
        plan="greetings",
        checks=CHECKS,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def tenant(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The tenant the escalation is recorded for, in the home's SQLite database or, as the
    application role, in PostgreSQL."""
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    if request.param == "sqlite":
        yield "default"
        return
    pg: MemoryPostgres = request.getfixturevalue("memory_postgres")
    name = unique_tenant("esc")
    create_tenants(pg, name)
    for variable, value in pg.environ(tmp_path / "home").items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PLAN2FLOW_TENANT", name)
    yield name


def journal(tenant: str) -> list[EscalationRecord]:
    with configured_database() as database:
        return list(records(database, tenant))


@pytest.mark.slow
def test_code_that_passes_the_checks_does_not_escalate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    with fake_openai([]) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, RIGHT_BODY, policy(server.url)))
    assert result.outcome is Outcome.SUCCEEDED and result.quality == 1.0, result.findings
    assert server.requests == [] and journal("default") == []
    assert RIGHT_BODY in (tmp_path / "code" / "greeter.py").read_text()


@pytest.mark.slow
def test_a_failing_test_feeds_the_chain_and_the_fixed_code_is_kept(
    tmp_path: Path, tenant: str
) -> None:
    script = [
        Reply(content=bodies({"greet": WRONG_BODY})),
        Reply(content=bodies({"greet": RIGHT_BODY})),
    ]
    with fake_openai(script) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, WRONG_BODY, policy(server.url)))
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    assert result.findings == ["escalated: test failed:"]
    assert "kept 1-remote-2" in result.log_excerpt
    assert RIGHT_BODY in (tmp_path / "code" / "greeter.py").read_text()

    asked = server.requests[0].json["messages"][-1]["content"]
    assert "fails the checks of the steps after this one" in asked
    assert WRONG_BODY in asked and "test_greet" in asked and "AssertionError" in asked
    assert "Write the bodies of: greet" in asked

    (record,) = journal(tenant)
    assert (record.tenant, record.plan, record.flow_run_id) == (tenant, "greetings", "run-9")
    assert (record.outcome, record.winner) == ("kept", "1-remote-2")
    assert record.reason.endswith("and passes the downstream checks")
    local, wrong, right = record.variants
    assert local.checks is not None and local.checks.startswith("test failed:")
    assert (local.tests_passed, local.tests_total) == (1, 2)
    assert wrong.checks is None and wrong.score < 0.8  # below the threshold: never checked
    assert right.checks is None and right.tests_passed == 2


@pytest.mark.slow
def test_a_variant_failing_the_validator_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without lint in the score both variants tie and the first would win; the validator's ruff
    finds its unused variable, so the second is kept."""
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    script = [
        Reply(content=bodies({"greet": UNUSED_BODY})),
        Reply(content=bodies({"greet": RIGHT_BODY})),
    ]
    with fake_openai(script) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, None, policy(server.url, lint=0)))
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    (record,) = journal("default")
    _, unused, right = record.variants
    assert unused.score == right.score >= 0.8
    assert unused.checks is not None and "F841" in unused.checks
    assert record.winner == "1-remote-2" and right.checks is None
    assert "unused" not in (tmp_path / "code" / "greeter.py").read_text()


@pytest.mark.slow
def test_when_no_variant_passes_the_checks_the_task_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    with fake_openai([Reply(content=bodies({"greet": UNUSED_BODY}))]) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, None, policy(server.url, lint=0)))
    assert result.outcome is Outcome.FAILED
    assert "no variant passes the downstream checks (validate, test)" in result.findings[-1]
    assert "escalation reached the human tier" in result.findings[-1]
    assert not (tmp_path / "code" / "greeter.py").exists()


PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata: {{name: greetings, version: "1.0.0"}}
defaults:
  escalation:
    threshold: 0.8
    weights: {{types: 0}}
    allowed_hosts: ["127.0.0.1"]
    tiers:
      - local: {{}}
      - remote: {{base_url: "{url}", model: small, api_key_env: P2F_TEST_KEY}}
      - human: {{}}
components:
  - name: greeter
    spec:
      functions:
        - name: greet
          signature: "(name: str) -> str"
          body: "return 'Hello, Ada!'"
          examples:
            - {{call: "greet('Ada')", returns: "'Hello, Ada!'"}}
            - {{call: "greet('Bo')", returns: "'Hello, Bo!'"}}
delivery:
  assemble: {{}}
  package: {{params: {{formats: [wheel], sbom: false}}}}
"""


@pytest.mark.slow
def test_in_a_flow_the_validate_and_test_tasks_get_the_fixed_code(
    tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the policy this plan's test task fails (its body is wrong for Bo); with it, the
    generator's escalation fixes the body, and validate, test and the package all pass."""
    monkeypatch.setenv("P2F_TEST_KEY", "k-e2e")
    with fake_openai([Reply(content=bodies({"greet": RIGHT_BODY}))]) as server:
        module = build_module(tmp_path / "build", PLAN.format(url=server.url))
        graph = read_graph(module.parent / "greetings.taskgraph.json")
        assert [c["type"] for c in graph.tasks["greeter.generate_code"].checks] == [
            "validate",
            "test",
        ]
        flow = import_flow(module)
        with runtime.options(runtime.RunOptions()):
            state = flow(return_state=True)
    summary = runtime.summary_of(state)
    assert state.is_completed(), summary
    states = {task.id: task.state for task in summary.tasks}
    assert states["greeter.validate"] == states["greeter.test"] == "Completed"
    assert len(server.requests) == 2  # two variants, the default

    (record,) = journal("default")
    assert record.task_id == "greeter.generate_code" and record.winner == "1-remote-1"
    assert record.variants[0].checks is not None
    (wheel,) = (run_home / "artifacts").rglob("greetings-1.0.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert RIGHT_BODY in archive.read("greeter.py").decode()
