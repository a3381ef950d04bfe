"""The published JSON Schema and the CLI agree on every example plan and on the plan rules that a
schema can express; and the schema compiles under ajv's strict mode.

A second validator (`jsonschema`, with format checking) reads the same data as the compiler (its
own loader), so a disagreement is the schema's, not YAML's. Codes whose rule no JSON Schema can
state (references, the graph, YAML itself, the names of PEP 508/440) are listed; for plans whose
only errors are those, the schema must accept the plan, so it is never stricter than the CLI.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support import need_service
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import PlanError
from plan2flow.compiler.load import load_plan

ROOT = Path(__file__).parents[1]
SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
PLANS = sorted((ROOT / "examples" / "plans").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "plans" / "invalid").glob("*.yaml")
)
AJV_SOURCE = ROOT / "tests" / "ajv"
AJV_HOME = ROOT / "build" / "ajv"

NOT_EXPRESSIBLE = {
    "P2F003": "YAML syntax",
    "P2F004": "duplicate keys: the data keeps one of them",
    "P2F005": "nesting limit of the loader",
    "P2F006": "alias expansion limit of the loader",
    "P2F008": "YAML tags: the data holds the plain value",
    "P2F109": "PEP 508 and PEP 440 grammars",
    "P2F110": "URL hosts against allowed_hosts, regular expressions, tiers merged with defaults",
    "P2F201": "unique ids across tasks, components and expansions",
    "P2F202": "references to other tasks",
    "P2F203": "self-references",
    "P2F204": "artifacts of other tasks",
    "P2F205": "references to matrix tasks",
    "P2F206": "unique component names",
    "P2F207": "references to other components",
    "P2F209": "template expressions against declared names",
    "P2F111": "an approval's options against its branch, on_timeout and enum defaults",
    "P2F211": "branch targets against the graph",
    "P2F301": "cycles",
    "P2F304": "the deploy rule on the graph",
}

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: case}\n"
TASK = "tasks:\n  - {id: a, type: noop}\n"
CASES = {
    "schedule-two-kinds": HEAD + "schedule: {cron: '@daily', interval_seconds: 60}\n" + TASK,
    "schedule-no-kind": HEAD + "schedule: {timezone: UTC}\n" + TASK,
    "schedule-null-kinds": HEAD + "schedule: {cron: null, rrule: FREQ=DAILY}\n" + TASK,
    "schedule-one-kind": HEAD + "schedule: {rrule: FREQ=DAILY}\n" + TASK,
    "param-keyword": HEAD + "params: {class: {type: string}}\n" + TASK,
    "param-soft-keyword": HEAD + "params: {match: {type: string}}\n" + TASK,
    "tasks-empty": HEAD + "tasks: []\n",
    "tasks-empty-components": HEAD + "tasks: []\ncomponents: [{name: core}]\n",
    "delivery-empty": HEAD + "delivery: {}\n",
    "delivery-only": HEAD + "delivery: {package: {}}\n",
    "param-default-type": HEAD + "params: {n: {type: integer, default: '3'}}\n" + TASK,
    "param-enum-type": HEAD + "params: {n: {enum: [a, 1]}}\n" + TASK,
    "param-default-null": HEAD + "params: {n: {type: integer, default: null}}\n" + TASK,
    "param-number-int": HEAD + "params: {n: {type: number, default: 3, enum: [3, 4.5]}}\n" + TASK,
    "shell-task-agent": HEAD + "tasks:\n  - {id: a, type: shell, agent: x, params: {argv: [a]}}\n",
    "agent-on-test": HEAD + "tasks:\n  - {id: a, type: test, agent: x}\n",
    "agents-for-noop": HEAD + "defaults: {agents: {noop: x}}\n" + TASK,
}


def cli_verdict(path: Path) -> tuple[bool, set[str]]:
    """Whether `plan2flow validate` accepts the plan, and its error codes."""
    result = CliRunner().invoke(app, ["validate", "-f", "json", str(path)])
    assert result.exit_code in (0, 1, 2), result.output
    (plan,) = json.loads(result.stdout)["plans"]
    errors = {d["code"] for d in plan["diagnostics"] if d["severity"] == "error"}
    return plan["ok"], errors


def schema_errors(data: Any) -> list[str]:
    validator = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [error.message for error in validator.iter_errors(data)]


def loaded(path: Path) -> Any:
    """The plan's data as the compiler reads it; None when it cannot be read as data."""
    try:
        return load_plan(path.read_bytes(), str(path)).data
    except PlanError:
        return None


def plan_files(tmp: Path) -> list[Path]:
    files = list(PLANS)
    for name, text in CASES.items():
        files.append(tmp / f"{name}.yaml")
        files[-1].write_text(text, encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return plan_files(tmp_path_factory.mktemp("cases"))


@pytest.mark.slow
def test_schema_and_cli_give_the_same_verdicts(plans: list[Path]) -> None:
    disagreements, compared = [], 0
    for path in plans:
        data = loaded(path)
        ok, codes = cli_verdict(path)
        if data is None:
            assert not ok and codes <= set(NOT_EXPRESSIBLE) | {"P2F007", "P2F009"}
            continue
        schema_ok = not schema_errors(data)
        expected = ok or codes <= set(NOT_EXPRESSIBLE)
        compared += 1
        if schema_ok != expected:
            disagreements.append((path.name, sorted(codes), schema_errors(data)[:3]))
    assert disagreements == []
    assert compared >= 40


@pytest.mark.parametrize(
    ("case", "valid"),
    [
        ("schedule-two-kinds", False),
        ("schedule-no-kind", False),
        ("schedule-null-kinds", True),
        ("param-keyword", False),
        ("param-soft-keyword", True),
        ("tasks-empty", False),
        ("tasks-empty-components", True),
        ("delivery-empty", False),
        ("param-default-type", False),
        ("param-enum-type", False),
        ("param-number-int", True),
        ("shell-task-agent", False),
        ("agent-on-test", True),
        ("agents-for-noop", False),
    ],
)
def test_each_case_has_the_verdict_both_agree_on(tmp_path: Path, case: str, valid: bool) -> None:
    (path,) = [p for p in plan_files(tmp_path) if p.stem == case]
    assert cli_verdict(path)[0] is valid
    assert (not schema_errors(loaded(path))) is valid


def test_schema_has_no_openapi_discriminator() -> None:
    assert '"discriminator"' not in (ROOT / "schemas" / "plan.schema.json").read_text("utf-8")


def _ajv_installed() -> Path:
    """ajv from tests/ajv's lock, installed once into build/ajv (gitignored), not globally."""
    need_service(shutil.which("node") is not None, "node is not installed: cannot run ajv")
    need_service(shutil.which("npm") is not None, "npm is not installed: cannot install ajv")
    AJV_HOME.mkdir(parents=True, exist_ok=True)
    with open(AJV_HOME / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock_file = (AJV_SOURCE / "package-lock.json").read_bytes()
        stamp = AJV_HOME / "node_modules" / ".plan2flow-lock"
        if not stamp.exists() or stamp.read_bytes() != lock_file:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(AJV_SOURCE / name, AJV_HOME / name)
            done = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=AJV_HOME,
                capture_output=True,
                text=True,
                check=False,
            )
            need_service(done.returncode == 0, f"npm ci of ajv failed: {done.stderr[-500:]}")
            stamp.write_bytes(lock_file)
    return AJV_HOME / "node_modules"


@pytest.mark.slow
def test_schema_compiles_under_ajv_strict_mode_and_agrees(
    plans: list[Path], tmp_path: Path
) -> None:
    modules = _ajv_installed()
    documents = {}
    for index, path in enumerate(plans):
        data = loaded(path)
        if data is not None:
            documents[path] = tmp_path / f"{index}.json"
            documents[path].write_text(json.dumps(data), encoding="utf-8")
    done = subprocess.run(
        [
            "node",
            str(AJV_SOURCE / "check.cjs"),
            str(ROOT / "schemas" / "plan.schema.json"),
            *map(str, documents.values()),
        ],
        env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["compiled"], report.get("error")
    for path, document in documents.items():
        assert report["verdicts"][str(document)] == (not schema_errors(loaded(path))), path.name
