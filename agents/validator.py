"""Validator: parses and byte-compiles every file, runs ruff on it (and mypy when asked), and
writes a report; the task fails with the findings listed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from plan2flow.compiler.spec.params import ValidateParams

from .base import AgentBlock
from .contract import AgentRequest, AgentResult, Outcome


def _python_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [f for f in files if f.suffix == ".py"]


def _compile_findings(files: list[Path]) -> list[str]:
    findings = []
    for file in files:
        try:
            compile(file.read_text(encoding="utf-8"), str(file), "exec", dont_inherit=True)
        except SyntaxError as error:
            findings.append(f"{file.name}:{error.lineno}:{error.offset}: syntax error: {error.msg}")
    return findings


def _tool(args: list[str], cwd: Path, timeout: float) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


RUFF_RULES = "E4,E7,E9,F,B"
"""pyflakes, pycodestyle's error classes and bugbear: mistakes, not style."""


class ValidatorAgent(AgentBlock):
    """Checks generated code: syntax, ruff, and optionally mypy."""

    _block_type_slug = "plan2flow-validator"
    _block_type_name = "plan2flow Validator"
    _description = "Byte-compiles Python files and runs ruff (and mypy when asked) on them."
    task_types: ClassVar[tuple[str, ...]] = ("validate",)
    params_model: ClassVar[Any] = ValidateParams
    required_inputs: ClassVar[tuple[str, ...]] = ("code",)

    timeout_seconds: float = 300.0
    """How long one tool may run."""

    def check(self) -> str | None:
        if importlib.util.find_spec("ruff") is None:
            return "ruff is not installed"
        return None

    def execute(self, request: AgentRequest) -> AgentResult:
        code = Path(request.inputs["code"])
        files = _python_files([code])
        findings = _compile_findings(files)
        if not files:
            findings.append(f"no Python files in {code.name}")
        ruff_output = mypy_output = ""
        if request.params.get("ruff", True) and files and not findings:
            # No cache: tools must never write into an input artifact. The rule set is named, so
            # a newer ruff's defaults do not change what passes.
            status, ruff_output = _tool(
                ["ruff", "check", "--isolated", "--no-cache", "--select", RUFF_RULES,
                 "--output-format", "concise", "."],
                code,
                self.timeout_seconds,
            )  # fmt: skip
            if status != 0:
                findings.extend(
                    line for line in ruff_output.splitlines() if ":" in line and "Found" not in line
                )
        if request.params.get("mypy") and files and not findings:
            if importlib.util.find_spec("mypy") is None:
                findings.append("mypy was asked for but is not installed")
            else:
                status, mypy_output = _tool(
                    ["mypy", "--no-error-summary", "--cache-dir", ".mypy_cache", str(code)],
                    Path(request.workspace),
                    self.timeout_seconds,
                )
                if status != 0:
                    findings.extend(mypy_output.splitlines())
        report = {
            "files": [f.relative_to(code).as_posix() for f in files],
            "findings": findings,
            "ruff": ruff_output,
            "mypy": mypy_output,
        }
        outputs = {}
        if "report" in request.outputs:
            Path(request.outputs["report"]).write_text(
                json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            outputs["report"] = request.outputs["report"]
        return AgentResult(
            outcome=Outcome.FAILED if findings else Outcome.SUCCEEDED,
            outputs=outputs,
            metrics={"files": float(len(files)), "findings": float(len(findings))},
            findings=findings,
            quality=0.0 if findings else 1.0,
        )
