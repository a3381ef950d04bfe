"""Agents on real files and real subprocesses: generation, validation, testing, dispatch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support import build_module, import_flow, plan_text

from plan2flow.agents import (
    AGENTS,
    AgentRequest,
    CodeGeneratorAgent,
    Outcome,
    TesterAgent,
    ValidatorAgent,
)
from plan2flow.compiler.decompose.agents import AGENT_BLOCK_TYPES
from plan2flow.flows import runtime

SPEC: dict[str, Any] = {
    "module": "greet",
    "functions": [
        {
            "name": "hello",
            "signature": "(name: str) -> str",
            "docstring": "Greet someone.",
            "body": "return f'Hello, {name}!'",
            "examples": [{"call": "hello('Ada')", "returns": "'Hello, Ada!'"}],
        }
    ],
    "dataclasses": [{"name": "Person", "fields": [{"name": "name", "type": "str"}]}],
}


def request(tmp_path: Path, task_type: str, **fields: Any) -> AgentRequest:
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    return AgentRequest(task_id="c.x", task_type=task_type, workspace=str(workspace), **fields)


def generate(tmp_path: Path, spec: dict[str, Any]) -> Path:
    code = tmp_path / "code"
    result = CodeGeneratorAgent().execute(
        request(tmp_path, "generate_code", params={"spec": spec}, outputs={"code": str(code)})
    )
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    return code


def test_code_generator_writes_module_and_tests_deterministically(tmp_path: Path) -> None:
    first = generate(tmp_path / "one", SPEC)
    second = generate(tmp_path / "two", SPEC)
    assert sorted(p.name for p in first.iterdir()) == ["greet.py", "test_greet.py"]
    for name in ("greet.py", "test_greet.py"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "greet.py").read_text() == (
        '"""The greet component."""\n\nfrom __future__ import annotations\n\n'
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Person:\n    name: str\n\n\n"
        'def hello(name: str) -> str:\n    """Greet someone."""\n'
        "    return f'Hello, {name}!'\n"
    )
    assert "from greet import hello\n" in (first / "test_greet.py").read_text()


def test_code_generator_reports_what_it_cannot_derive(tmp_path: Path) -> None:
    spec = {"functions": [{"name": "guess", "examples": [{"call": "guess()", "returns": "1"}]}]}
    result = CodeGeneratorAgent().execute(
        request(tmp_path, "generate_code", params={"spec": spec}, outputs={"code": str(tmp_path)})
    )
    assert result.outcome is Outcome.FAILED
    assert result.quality == 0.0
    assert result.findings == [
        "function 'guess' has no body: the template generator cannot derive one"
    ]


def validate(tmp_path: Path, code: Path) -> Any:
    report = tmp_path / "report.json"
    return ValidatorAgent().execute(
        request(
            tmp_path,
            "validate",
            params={"ruff": True},
            inputs={"code": str(code)},
            outputs={"report": str(report)},
        )
    )


def test_validator_passes_clean_code_and_leaves_its_input_alone(tmp_path: Path) -> None:
    code = generate(tmp_path, SPEC)
    before = sorted(p.name for p in code.rglob("*"))
    result = validate(tmp_path, code)
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    assert json.loads((tmp_path / "report.json").read_text())["files"] == [
        "greet.py",
        "test_greet.py",
    ]
    assert sorted(p.name for p in code.rglob("*")) == before


def test_validator_catches_a_syntax_error(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken.py").write_text("def f(:\n    pass\n")
    result = validate(tmp_path, code)
    assert result.outcome is Outcome.FAILED
    assert result.findings[0].startswith("broken.py:1:7: syntax error")


def test_validator_reports_ruff_findings(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "lint.py").write_text("import os\n")
    result = validate(tmp_path, code)
    assert result.outcome is Outcome.FAILED
    assert any("F401" in finding for finding in result.findings)


def run_tests(tmp_path: Path, code: Path, **params: Any) -> Any:
    return TesterAgent().execute(
        request(
            tmp_path,
            "test",
            params=params,
            inputs={"code": str(code)},
            outputs={"junit": str(tmp_path / "junit.xml")},
        )
    )


@pytest.mark.slow
def test_tester_runs_the_generated_tests(tmp_path: Path) -> None:
    result = run_tests(tmp_path, generate(tmp_path, SPEC))
    assert result.outcome is Outcome.SUCCEEDED, result.log_excerpt
    assert result.metrics == {"tests": 1.0, "failures": 0.0, "errors": 0.0, "skipped": 0.0}
    assert (tmp_path / "junit.xml").exists()


@pytest.mark.slow
def test_tester_fails_on_a_failing_test(tmp_path: Path) -> None:
    spec = {**SPEC, "functions": [{**SPEC["functions"][0], "body": "return 'Bye'"}]}
    result = run_tests(tmp_path, generate(tmp_path, spec))
    assert result.outcome is Outcome.FAILED
    assert result.metrics["failures"] == 1.0
    assert any(line.startswith("FAILED") and "test_hello_1" in line for line in result.findings)


@pytest.mark.parametrize(
    ("args", "loaded"), [([], False), (["-p", "randomly"], True)], ids=["unnamed", "named"]
)
def test_tester_loads_only_the_pytest_plugins_a_plan_names(
    tmp_path: Path, args: list[str], loaded: bool
) -> None:
    """pytest-randomly, installed here as on many workers, would reorder and reseed a
    component's tests on every run unless the plan asks for it."""
    pytest.importorskip("pytest_randomly")
    code = tmp_path / "code"
    code.mkdir()
    (code / "test_plugins.py").write_text(
        "def test_randomly(request):\n"
        f"    assert request.config.pluginmanager.has_plugin('randomly') is {loaded}\n"
    )
    result = run_tests(tmp_path, code, args=args)
    assert result.outcome is Outcome.SUCCEEDED, result.log_excerpt
    assert result.metrics["tests"] == 1.0


def test_tester_needs_the_python_it_is_asked_for(tmp_path: Path) -> None:
    result = run_tests(tmp_path, generate(tmp_path, SPEC), python="2.7")
    assert result.outcome is Outcome.FAILED
    assert result.findings == ["python2.7 is not available on this worker"]


def test_every_agent_serves_the_types_the_compiler_assigns_to_it() -> None:
    for slug, cls in AGENTS.items():
        assert slug.startswith("plan2flow-")
        for task_type in cls.task_types:
            assert AGENT_BLOCK_TYPES[task_type] == slug
        agent = cls()
        assert set(agent.capabilities()) == set(cls.task_types)
        assert agent.health().ok


@pytest.mark.usefixtures("run_home")
@pytest.mark.slow
def test_a_component_runs_through_its_agents(tmp_path: Path) -> None:
    text = plan_text(
        "agents-e2e",
        "  - {id: after, type: noop, depends_on: [greet.test]}\n",
        "components:\n"
        "  - name: greet\n"
        "    spec:\n"
        "      functions:\n"
        "        - name: hello\n"
        "          signature: '(name: str) -> str'\n"
        "          body: \"return f'Hello, {name}!'\"\n"
        "          examples: [{call: \"hello('Ada')\", returns: \"'Hello, Ada!'\"}]\n",
    )
    flow = import_flow(build_module(tmp_path / "build", text))
    with runtime.options(runtime.RunOptions()):
        state = flow(return_state=True)
    summary = runtime.summary_of(state)
    assert state.is_completed(), summary
    assert {t.id: t.state for t in summary.tasks} == {
        "greet.generate_code": "Completed",
        "greet.validate": "Completed",
        "greet.test": "Completed",
        "after": "Completed",
    }


@pytest.mark.usefixtures("run_home")
def test_a_missing_agent_document_is_named(tmp_path: Path) -> None:
    text = plan_text("agents-missing", "  - {id: gen, type: generate_code, agent: nobody-here}\n")
    flow = import_flow(build_module(tmp_path / "build", text))
    with runtime.options(runtime.RunOptions()):
        state = flow(return_state=True)
    (task,) = runtime.summary_of(state).tasks
    assert task.state == "Failed"
    assert (
        "no agent document 'nobody-here' of block type 'plan2flow-code-generator'" in task.message
    )


@pytest.mark.slow
def test_assembler_lays_out_an_installable_project(tmp_path: Path) -> None:
    import subprocess
    import sys
    import tomllib

    from plan2flow.agents import AssemblerAgent

    models = generate(
        tmp_path / "models",
        {
            "module": "models",
            "dataclasses": [{"name": "Item", "fields": [{"name": "sku", "type": "str"}]}],
        },
    )
    report = generate(
        tmp_path / "report",
        {
            "module": "report",
            "imports": ["from models import Item"],
            "functions": [
                {"name": "main", "signature": "() -> None", "body": "print(Item('widget').sku)"}
            ],
        },
    )
    project = tmp_path / "project"
    params = {"project_name": "inventory", "version": "1.2.3", "scripts": {"inv": "report:main"}}
    result = AssemblerAgent().execute(
        request(
            tmp_path,
            "assemble",
            params=params,
            inputs={"models": str(models), "report": str(report)},
            outputs={"project": str(project)},
        )
    )
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*.py")) == [
        "src/models.py",
        "src/report.py",
        "tests/test_models.py",
        "tests/test_report.py",
    ]
    config = tomllib.loads((project / "pyproject.toml").read_text())
    assert config["project"]["name"] == "inventory"
    assert config["project"]["scripts"] == {"inv": "report:main"}
    # Installable as it stands: build and install it, without network, and run its command.
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(project)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = subprocess.run(
        [sys.executable, "-c", "import report; report.main()"],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.stdout == "widget\n", ran.stderr


def assembled(tmp_path: Path) -> Path:
    from plan2flow.agents import AssemblerAgent

    code = generate(
        tmp_path / "greeter",
        {
            "module": "greeter",
            "functions": [
                {"name": "main", "signature": "() -> None", "body": "print('Hello from greeter')"}
            ],
        },
    )
    project = tmp_path / "project"
    params = {"project_name": "greeter", "version": "1.0.0", "scripts": {"greet": "greeter:main"}}
    result = AssemblerAgent().execute(
        request(
            tmp_path,
            "assemble",
            params=params,
            inputs={"greeter": str(code)},
            outputs={"project": str(project)},
        )
    )
    assert result.outcome is Outcome.SUCCEEDED
    return project


def packaged(tmp_path: Path) -> Path:
    from plan2flow.agents import PackagerAgent

    dist = tmp_path / "dist"
    result = PackagerAgent().execute(
        request(
            tmp_path,
            "package",
            params={"formats": ["wheel", "sdist", "zip"], "sbom": True},
            inputs={"project": str(assembled(tmp_path))},
            outputs={"dist": str(dist)},
        )
    )
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    return dist


@pytest.mark.slow
def test_packager_builds_wheel_sdist_zip_sbom_and_checksums(tmp_path: Path) -> None:
    import hashlib

    dist = packaged(tmp_path)
    names = sorted(p.name for p in dist.iterdir())
    assert names == [
        "SHA256SUMS",
        "greeter-1.0.0-py3-none-any.whl",
        "greeter-1.0.0.cdx.json",
        "greeter-1.0.0.tar.gz",
        "greeter-1.0.0.zip",
    ]
    sums = dict(
        reversed(line.split("  ")) for line in (dist / "SHA256SUMS").read_text().splitlines()
    )
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest
    sbom = json.loads((dist / "greeter-1.0.0.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["purl"] == "pkg:pypi/greeter@1.0.0"
    # The project artifact was built from a copy: nothing was written into it.
    assert not list((tmp_path / "project").glob("*.egg-info"))


def deploy(tmp_path: Path, dist: Path, **params: Any) -> Any:
    from plan2flow.agents import DeployerAgent

    return DeployerAgent().execute(
        request(
            tmp_path,
            "deploy",
            params=params,
            inputs={"dist": str(dist)},
            outputs={"release": str(tmp_path / "release.json")},
        )
    )


@pytest.mark.slow
def test_deployer_directory_is_idempotent_and_has_a_dry_run(tmp_path: Path) -> None:
    dist = packaged(tmp_path)
    target = tmp_path / "releases"
    dry = deploy(tmp_path, dist, target="directory", path=str(target), dry_run=True)
    assert dry.outcome is Outcome.SUCCEEDED and not target.exists()
    first = deploy(tmp_path, dist, target="directory", path=str(target))
    assert first.metrics["changed"] == 1.0
    manifest = json.loads((target / "greeter-1.0.0" / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in dist.iterdir())
    again = deploy(tmp_path, dist, target="directory", path=str(target))
    assert again.metrics["changed"] == 0.0
    assert again.log_excerpt.startswith("unchanged")


@pytest.mark.slow
def test_deployer_venv_installs_the_wheel_and_runs_the_smoke_command(tmp_path: Path) -> None:
    dist = packaged(tmp_path)
    result = deploy(
        tmp_path, dist, target="venv", path=str(tmp_path / "venv"), smoke_command=["greet"]
    )
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    assert result.log_excerpt.endswith("smoke: Hello from greeter")


@pytest.mark.slow
def test_deployer_git_commits_tags_and_refuses_a_dirty_tree(tmp_path: Path) -> None:
    import subprocess

    dist = packaged(tmp_path)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("releases\n")
    subprocess.run(["git", "-C", str(repo), "add", "README"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
        check=True,
    )
    first = deploy(tmp_path, dist, target="git", path=str(repo))
    assert first.outcome is Outcome.SUCCEEDED, first.findings
    tags = subprocess.run(["git", "-C", str(repo), "tag"], capture_output=True, text=True).stdout
    assert tags.split() == ["release-greeter-1.0.0"]
    again = deploy(tmp_path, dist, target="git", path=str(repo))
    assert again.log_excerpt.startswith("unchanged")
    (repo / "README").write_text("edited\n")
    dirty = deploy(tmp_path, dist, target="git", path=str(repo))
    assert dirty.outcome is Outcome.FAILED
    assert dirty.findings == [f"refused: {repo} has uncommitted changes"]


@pytest.mark.slow
def test_deployer_git_pushes_to_a_bare_repository(tmp_path: Path) -> None:
    import subprocess

    dist = packaged(tmp_path)
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    result = deploy(tmp_path, dist, target="git", path=str(bare))
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    tags = subprocess.run(["git", "-C", str(bare), "tag"], capture_output=True, text=True).stdout
    assert tags.split() == ["release-greeter-1.0.0"]


@pytest.mark.slow
@pytest.mark.usefixtures("restore_environment")
def test_greeter_service_ends_with_a_wheel_whose_command_answers(
    tmp_path: Path, run_home: Path
) -> None:
    """The example plan, run as a user runs it: a wheel that installs into a fresh virtual
    environment, whose console command prints the expected text."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from plan2flow.cli import app

    result = CliRunner().invoke(
        app, ["run", str(Path(__file__).parents[1] / "examples/plans/greeter-service.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "plan greeter-service: completed" in result.stdout
    (wheel,) = (run_home / "artifacts" / "greeter-service").glob("*/dist/*.whl")
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         str(wheel)],
        check=True,
    )  # fmt: skip
    done = subprocess.run([str(venv / "bin" / "greeter")], capture_output=True, text=True)
    assert done.stdout == "Hello, World!\n"


def test_the_compilers_checksum_table_matches_the_block_classes() -> None:
    """Regenerate with `python -m plan2flow.agents.table` when a Block class changes."""
    from plan2flow.agents.table import checksums, render_table
    from plan2flow.compiler.decompose.agents import AGENT_SCHEMA_CHECKSUMS

    assert checksums() == AGENT_SCHEMA_CHECKSUMS
    assert set(AGENT_BLOCK_TYPES.values()) == set(AGENTS)
    assert render_table().startswith("AGENT_SCHEMA_CHECKSUMS: dict[str, str] = {\n")


@pytest.mark.usefixtures("run_home")
def test_a_default_document_another_process_created_first_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Processes starting together may all find no `default` document of an agent: the ones
    that lose the race to create it load the winner's instead of failing their task."""
    from plan2flow.flows import executors

    race = uuid.uuid4().hex[:12]

    class RacedValidator(ValidatorAgent):
        # A block type of its own, by name too: a server given a type whose name it knows
        # uses the known type, and this would save into the validator's documents.
        _block_type_name = f"plan2flow test raced {race}"
        _block_type_slug = f"plan2flow-test-raced-{race}"
        looked: ClassVar[int] = 0

        @classmethod
        def load(cls, name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            cls.looked += 1
            if cls.looked == 1:  # it looked before the winner saved: Prefect's "not found"
                raise ValueError(f"Unable to find block document named {name}")
            return super().load(name, *args, **kwargs)

    slug = RacedValidator.get_block_type_slug()
    monkeypatch.setitem(AGENTS, slug, RacedValidator)
    monkeypatch.setattr(executors, "_AGENT_DOCUMENTS", {})
    RacedValidator(timeout_seconds=7.0).save(executors.DEFAULT_DOCUMENT)  # the winner's
    agent = executors.load_agent(slug, executors.DEFAULT_DOCUMENT)
    assert (agent.timeout_seconds, RacedValidator.looked) == (7.0, 2)
    assert executors.load_agent(slug, executors.DEFAULT_DOCUMENT) is agent  # once per process


@pytest.mark.usefixtures("run_home")
def test_a_task_whose_agent_is_unhealthy_fails_fast(tmp_path: Path) -> None:
    """A Validator document whose tool budget is impossible reports unhealthy: the task fails at
    once with the reason, without running."""
    from plan2flow.flows import executors

    class BrokenValidator(ValidatorAgent):
        _block_type_slug = "plan2flow-test-broken-validator"

        def check(self) -> str | None:
            return "ruff is not installed"

    executors._AGENT_DOCUMENTS[("plan2flow-validator", "broken")] = BrokenValidator()
    health = BrokenValidator().health()
    assert (health.ok, health.detail) == (False, "ruff is not installed")
    text = plan_text(
        "unhealthy",
        "  - {id: gen, type: generate_code, outputs: [code]}\n"
        "  - {id: check, type: validate, agent: broken, inputs: {code: gen.code}}\n",
    )
    flow = import_flow(build_module(tmp_path / "build", text))
    with runtime.options(runtime.RunOptions()):
        state = flow(return_state=True)
    tasks = {t.id: t for t in runtime.summary_of(state).tasks}
    assert tasks["check"].state == "Failed"
    assert "agent 'plan2flow-validator/broken' is unhealthy: ruff is not installed" in (
        tasks["check"].message
    )
