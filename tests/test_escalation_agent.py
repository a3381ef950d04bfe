"""The code generator escalates when its plan says so: a component without a body gets its body
from competing variants of a model on 127.0.0.1, the one passing the tests is kept, validated,
tested, packaged and installed; without a policy, nothing changes."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openai_server import FakeOpenAI, Reply, bodies, fake_openai
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
from plan2flow.memory.db.engine import configured_database

SPEC: dict[str, Any] = {
    "module": "greeter",
    "functions": [
        {
            "name": "greet",
            "signature": "(name: str) -> str",
            "examples": [
                {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
                {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
            ],
        }
    ],
}
RIGHT = bodies({"greet": "return f'Hello, {name}!'"})
WRONG = bodies({"greet": "return 'Hello, Ada!'"})


def journal() -> list[EscalationRecord]:
    """The records of tenant `default` in the project memory of PLAN2FLOW_HOME (SQLite)."""
    with configured_database() as database:
        return list(records(database, "default"))


def policy(server: FakeOpenAI) -> dict[str, Any]:
    tiers = [
        Tier(local=LocalTier()),
        Tier(remote=RemoteTier(base_url=server.url, model="small", api_key_env="P2F_TEST_KEY")),
        Tier(human=HumanTier()),
    ]
    return policy_record(
        EscalationPolicy(
            threshold=0.8, tiers=tiers, allowed_hosts=["127.0.0.1"], weights=Weights(types=0)
        )
    )


def request(tmp_path: Path, escalation: dict[str, Any] | None) -> AgentRequest:
    (tmp_path / "work").mkdir(exist_ok=True)
    return AgentRequest(
        task_id="greeter.generate_code",
        task_type="generate_code",
        params={"language": "python", "spec": SPEC},
        outputs={"code": str(tmp_path / "code")},
        workspace=str(tmp_path / "work"),
        correlation_id="run-7",
        escalation=escalation,
        plan="greetings",
    )


def test_without_a_policy_a_missing_body_fails_as_before(tmp_path: Path) -> None:
    result = CodeGeneratorAgent().execute(request(tmp_path, None))
    assert (result.outcome, result.quality) == (Outcome.FAILED, 0.0)
    assert result.findings == [
        "function 'greet' has no body: the template generator cannot derive one"
    ]


@pytest.mark.slow
def test_the_generator_keeps_the_variant_that_passes_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    with fake_openai([Reply(content=WRONG), Reply(content=RIGHT)]) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, policy(server)))
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    assert result.quality >= 0.8 and result.metrics["escalation_variants"] == 3.0
    assert "kept 1-remote-2 (fake-model" in result.log_excerpt
    code = (tmp_path / "code" / "greeter.py").read_text()
    assert "return f'Hello, {name}!'" in code
    assert (tmp_path / "code" / "test_greeter.py").exists()
    (record,) = journal()
    assert (record.plan, record.flow_run_id, record.winner) == ("greetings", "run-7", "1-remote-2")


@pytest.mark.slow
def test_the_generator_reports_the_tier_it_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    with fake_openai([Reply(content=WRONG)]) as server:
        result = CodeGeneratorAgent().execute(request(tmp_path, policy(server)))
    assert (result.outcome, result.quality) == (Outcome.FAILED, 0.0)
    assert "escalation reached the human tier" in result.findings[1]
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
          examples:
            - {{call: "greet('Ada')", returns: "'Hello, Ada!'"}}
            - {{call: "greet('Bo')", returns: "'Hello, Bo!'"}}
delivery:
  assemble: {{}}
  package: {{params: {{formats: [wheel], sbom: false}}}}
"""


@pytest.mark.slow
def test_a_plan_whose_component_has_no_body_escalates_end_to_end(
    tmp_path: Path, run_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2F_TEST_KEY", "k-e2e")
    with fake_openai([Reply(content=WRONG), Reply(content=RIGHT)]) as server:
        flow = import_flow(build_module(tmp_path / "build", PLAN.format(url=server.url)))
        with runtime.options(runtime.RunOptions()):
            state = flow(return_state=True)
    summary = runtime.summary_of(state)
    assert state.is_completed(), summary
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer k-e2e"] * 2

    (record,) = journal()
    assert (record.plan, record.task_id, record.winner) == (
        "greetings",
        "greeter.generate_code",
        "1-remote-2",
    )
    (wheel,) = (run_home / "artifacts").rglob("greetings-1.0.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "return f'Hello, {name}!'" in archive.read("greeter.py").decode()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(install, check=True)
    said = subprocess.run(
        [str(python), "-c", "from greeter import greet; print(greet('Eve'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert said.stdout == "Hello, Eve!\n"
