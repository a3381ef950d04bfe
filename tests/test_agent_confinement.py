"""Agents write only inside their directories, whatever names a request carries, and the
packager's SBOM names each requirement once, by project. Real files, real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plan2flow.agents import (
    AgentRequest,
    AgentResult,
    AssemblerAgent,
    CodeGeneratorAgent,
    DeployerAgent,
    Outcome,
    PackagerAgent,
    TesterAgent,
)


def execute(agent: Any, tmp_path: Path, task_type: str, **fields: Any) -> AgentResult:
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    request = AgentRequest(task_id="t", task_type=task_type, workspace=str(workspace), **fields)
    result: AgentResult = agent.execute(request)
    return result


def written_outside(tmp_path: Path, allowed: Path) -> list[str]:
    """Files under `tmp_path` that are not under `allowed` (nor the agent's workspace)."""
    return sorted(
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if p.is_file()
        and not p.is_relative_to(allowed)
        and not p.is_relative_to(tmp_path / "workspace")
        and not p.is_relative_to(tmp_path / "given")
    )


SPEC = {"functions": [{"name": "f", "body": "return 1"}]}


@pytest.mark.parametrize("module", ["../../../../x", "/tmp/x", "a/b", "..", "class"])
def test_code_generator_refuses_a_module_that_is_not_one_name(tmp_path: Path, module: str) -> None:
    code = tmp_path / "a" / "b" / "c" / "d" / "code"
    spec = {**SPEC, "module": module}
    result = execute(
        CodeGeneratorAgent(),
        tmp_path,
        "generate_code",
        params={"spec": spec},
        outputs={"code": str(code)},
    )
    assert result.outcome is Outcome.FAILED
    assert result.findings == [
        f"module name {module!r} is "
        + ("a Python keyword" if module == "class" else "not a Python identifier")
    ]
    assert written_outside(tmp_path, code) == []
    assert not list(code.glob("*")) if code.exists() else True


@pytest.mark.parametrize(
    ("params", "finding"),
    [
        ({"version": "1.0/../../../x"}, "version '1.0/../../../x' is not a valid version"),
        ({"project_name": "../x"}, "project name '../x' is not a valid distribution name"),
        ({"dependencies": ["click", "a b"]}, "requirement 'a b' is not a valid requirement"),
        ({"scripts": {"../bin": "m:f"}}, "console script name '../bin' is not"),
        ({"python_requires": "3.11"}, "python_requires '3.11' is not a version specifier"),
    ],
)
def test_assembler_refuses_names_that_are_not_names(
    tmp_path: Path, params: dict[str, Any], finding: str
) -> None:
    project = tmp_path / "project"
    result = execute(
        AssemblerAgent(), tmp_path, "assemble", params=params, outputs={"project": str(project)}
    )
    assert result.outcome is Outcome.FAILED
    assert result.findings[0].startswith(finding)
    assert not project.exists()


def project_with(tmp_path: Path, name: str, version: str, dependencies: list[str]) -> Path:
    """An assembled project, as another task could have written it."""
    project = tmp_path / "given" / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "m.py").write_text("X = 1\n")
    (project / "pyproject.toml").write_text(
        "[project]\n"
        f"name = {json.dumps(name)}\nversion = {json.dumps(version)}\n"
        f"dependencies = {json.dumps(dependencies)}\n"
    )
    return project


def package(tmp_path: Path, project: Path) -> tuple[AgentResult, Path]:
    dist = tmp_path / "out" / "dist"
    result = execute(
        PackagerAgent(),
        tmp_path,
        "package",
        params={"formats": ["zip"], "sbom": True},
        inputs={"project": str(project)},
        outputs={"dist": str(dist)},
    )
    return result, dist


@pytest.mark.parametrize(
    ("name", "version", "finding"),
    [
        ("p", "1.0/../../../escaped", "version '1.0/../../../escaped' is not a valid version"),
        ("../../../escaped", "1.0", "project name '../../../escaped' is not a valid"),
    ],
)
def test_packager_refuses_a_project_whose_name_leaves_dist(
    tmp_path: Path, name: str, version: str, finding: str
) -> None:
    result, dist = package(tmp_path, project_with(tmp_path, name, version, []))
    assert result.outcome is Outcome.FAILED
    assert result.findings[0].startswith(finding)
    assert written_outside(tmp_path, dist) == []


def test_sbom_names_each_requirement_once_by_project(tmp_path: Path) -> None:
    declared = ["click", "click", "requests>=2.31", "Django==4.2.1", "django>=4", "rich[jupyter]"]
    result, dist = package(tmp_path, project_with(tmp_path, "My.Tool", "1.0", declared))
    assert result.outcome is Outcome.SUCCEEDED, result.findings
    sbom = json.loads((dist / "My.Tool-1.0.cdx.json").read_text())
    root = sbom["metadata"]["component"]
    assert (root["name"], root["purl"]) == ("My.Tool", "pkg:pypi/my-tool@1.0")
    components = {c["name"]: (c.get("version"), c["purl"]) for c in sbom["components"]}
    assert components == {
        "click": (None, "pkg:pypi/click"),
        "Django": ("4.2.1", "pkg:pypi/django@4.2.1"),
        "requests": (None, "pkg:pypi/requests"),
        "rich": (None, "pkg:pypi/rich"),
    }
    (edges,) = [d for d in sbom["dependencies"] if d["ref"] == root["bom-ref"]]
    assert sorted(edges["dependsOn"]) == sorted(purl for _, purl in components.values())


def test_packager_reports_an_invalid_requirement_in_one_line(tmp_path: Path) -> None:
    result, _ = package(tmp_path, project_with(tmp_path, "p", "1.0", ["ok", "not ok"]))
    assert result.outcome is Outcome.FAILED
    assert result.findings == ["requirement 'not ok' is not a valid requirement (PEP 508)"]


def test_tester_refuses_a_python_that_is_a_path(tmp_path: Path) -> None:
    code = tmp_path / "given" / "code"
    code.mkdir(parents=True)
    result = execute(
        TesterAgent(), tmp_path, "test", params={"python": "3/../../x"}, inputs={"code": str(code)}
    )
    assert result.outcome is Outcome.FAILED
    assert result.findings == ["python '3/../../x' is not a version"]


@pytest.mark.parametrize("target", ["directory", "git"])
def test_deployer_does_not_follow_a_release_folder_out_of_its_target(
    tmp_path: Path, target: str
) -> None:
    dist = tmp_path / "given" / "dist"
    dist.mkdir(parents=True)
    (dist / "p-1.0-py3-none-any.whl").write_bytes(b"wheel")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "target"
    releases = root / "releases" if target == "git" else root
    releases.mkdir(parents=True)
    (releases / "p-1.0").symlink_to(elsewhere)
    if target == "git":
        git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@localhost"]
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "a release folder links out"], check=True)
    result = execute(
        DeployerAgent(),
        tmp_path,
        "deploy",
        params={"target": target, "path": str(root)},
        inputs={"dist": str(dist)},
    )
    assert result.outcome is Outcome.FAILED
    assert "would be written outside" in result.findings[0]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.slow
def test_a_run_time_module_name_cannot_leave_the_output(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: confined}\n"
        "params: {m: {default: ok}}\ntasks:\n"
        "  - id: gen\n    type: generate_code\n    outputs: [code]\n"
        "    params:\n      spec: {module: '${{ params.m }}', functions: [{name: f, body: '1'}]}\n"
    )
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PLAN2FLOW_HOME": str(home),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    command = [str(Path(sys.executable).parent / "plan2flow"), "run", str(plan)]
    done = subprocess.run(
        [*command, "--param", "m=../../../../../x"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "module name '../../../../../x' is not a Python identifier" in done.stdout
    assert sorted(p.name for p in tmp_path.rglob("*x.py")) == []
