"""Assembler: lays generated components out as an installable project (pyproject.toml, a src
layout, tests), deterministically: the same inputs give the same files, byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

from plan2flow.compiler.spec import names
from plan2flow.compiler.spec.params import AssembleParams

from .base import AgentBlock
from .confine import inside, refusing, require
from .contract import AgentRequest, AgentResult, Outcome


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's string escapes are TOML's."""
    return json.dumps(value, ensure_ascii=False)


def render_pyproject(params: AssembleParams, modules: list[str]) -> str:
    """The assembled project's pyproject.toml (setuptools, src layout, top-level modules)."""
    name = params.project_name or "project"
    lines = [
        "[build-system]",
        'requires = ["setuptools>=70.1"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_string(name)}",
        f"version = {_toml_string(params.version or '0.0.0')}",
        f"requires-python = {_toml_string(params.python_requires)}",
        "dependencies = [" + ", ".join(_toml_string(d) for d in params.dependencies) + "]",
    ]
    if params.scripts:
        lines += ["", "[project.scripts]"]
        lines += [
            f"{_toml_string(k)} = {_toml_string(v)}" for k, v in sorted(params.scripts.items())
        ]
    lines += [
        "",
        "[tool.setuptools]",
        'package-dir = {"" = "src"}',
        "py-modules = [" + ", ".join(_toml_string(m) for m in modules) + "]",
        "",
    ]
    return "\n".join(lines)


def check_params(params: AssembleParams) -> None:
    """Refuse names and versions that are not what they claim to be: they become file names of
    the packages built from the project."""
    if params.project_name is not None:
        require(names.project_name_problem(params.project_name))
    if params.version is not None:
        require(names.version_problem(params.version))
    require(names.python_requires_problem(params.python_requires))
    for requirement in params.dependencies:
        require(names.requirement_problem(requirement))
    for command, target in sorted(params.scripts.items()):
        require(names.script_problem(command, target))


class AssemblerAgent(AgentBlock):
    """Assembles component code into a project."""

    _block_type_slug = "plan2flow-assembler"
    _block_type_name = "plan2flow Assembler"
    _description = "Lays generated components out as an installable Python project."
    task_types: ClassVar[tuple[str, ...]] = ("assemble",)
    params_model: ClassVar[Any] = AssembleParams
    required_outputs: ClassVar[tuple[str, ...]] = ("project",)

    @refusing
    def execute(self, request: AgentRequest) -> AgentResult:
        params = AssembleParams.model_validate(request.params, strict=False)
        check_params(params)
        project = Path(request.outputs["project"])
        (project / "src").mkdir(parents=True, exist_ok=True)
        (project / "tests").mkdir(exist_ok=True)
        modules: list[str] = []
        findings: list[str] = []
        for name, source in sorted(request.inputs.items()):
            for file in sorted(Path(source).glob("*.py")):
                folder = "tests" if file.name.startswith("test_") else "src"
                target = inside(project, folder, file.name)
                if target.exists():
                    findings.append(f"{file.name} comes from two components (the second: {name})")
                    continue
                shutil.copyfile(file, target)
                if not file.name.startswith("test_"):
                    modules.append(file.stem)
        if not modules:
            findings.append("no component code to assemble")
        (project / "pyproject.toml").write_text(
            render_pyproject(params, sorted(modules)), encoding="utf-8"
        )
        return AgentResult(
            outcome=Outcome.FAILED if findings else Outcome.SUCCEEDED,
            outputs={"project": str(project)},
            metrics={"modules": float(len(modules))},
            findings=findings,
            quality=0.0 if findings else 1.0,
        )
