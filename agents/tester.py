"""Tester: runs pytest on a component's code in a subprocess, with a timeout; the JUnit XML and
the counts are the task's outputs; any failing test fails the task."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from plan2flow.compiler.spec.params import TestParams

from .base import AgentBlock
from .confine import refusing, require
from .contract import AgentRequest, AgentResult, Outcome

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def interpreter(version: str | None) -> str | None:
    """The Python to test with: this one, or `pythonX.Y` from PATH for another version."""
    if version:
        # `python{version}` is looked up as a command: a '/' would make it a path.
        require(None if _VERSION.match(version) else f"python {version!r} is not a version")
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not version or version == current:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    # A version manager's shim exists for every version; ask it which one it runs.
    probe = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return found if probe.returncode == 0 and probe.stdout.strip() == version else None


def _counts(junit: Path) -> dict[str, int]:
    root = ElementTree.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {
        key: sum(int(suite.get(key, 0)) for suite in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }


class TesterAgent(AgentBlock):
    """Runs a component's tests with pytest."""

    __test__ = False  # not a pytest test class

    _block_type_slug = "plan2flow-tester"
    _block_type_name = "plan2flow Tester"
    _description = "Runs pytest on generated code in a subprocess; JUnit XML and counts."
    task_types: ClassVar[tuple[str, ...]] = ("test",)
    params_model: ClassVar[Any] = TestParams
    required_inputs: ClassVar[tuple[str, ...]] = ("code",)

    timeout_seconds: float = 600.0
    """How long the test run may take."""

    def check(self) -> str | None:
        if importlib.util.find_spec("pytest") is None:
            return "pytest is not installed"
        return None

    @refusing
    def execute(self, request: AgentRequest) -> AgentResult:
        return self.run_tests(request, os.environ)

    def run_tests(self, request: AgentRequest, environ: Mapping[str, str]) -> AgentResult:
        """Run the tests with ``environ`` as the base of pytest's environment (the task's: the
        worker's; a candidate's that is not kept yet: one without the worker's variables)."""
        python = interpreter(request.params.get("python"))
        if python is None:
            return AgentResult(
                outcome=Outcome.FAILED,
                findings=[f"python{request.params.get('python')} is not available on this worker"],
                quality=0.0,
            )
        code = Path(request.inputs["code"])
        workspace = Path(request.workspace)
        junit = Path(request.outputs.get("junit") or workspace / "junit.xml")
        # The component's code first, then the code of the components it depends on.
        paths = [str(code)] + [p for name, p in sorted(request.inputs.items()) if name != "code"]
        env = {
            **environ,
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONDONTWRITEBYTECODE": "1",  # inputs are artifacts: never write into them
            # The component's tests run as written, whatever pytest plugins the worker has
            # installed (pytest-randomly would reorder and reseed them on every run); a plan
            # names the plugins it wants in `args` (`-p asyncio`). Loading none also halves
            # pytest's start (0.35 s of CPU, 0.85 s with a dozen installed).
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        argv = [
            python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
            *request.params.get("args", []), str(code),
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv,
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return AgentResult(
                outcome=Outcome.FAILED,
                findings=[f"pytest did not finish within {self.timeout_seconds} s"],
                quality=0.0,
            )
        output = (done.stdout + done.stderr).strip()
        counts = _counts(junit) if junit.exists() else {}
        failed = done.returncode != 0 or not counts.get("tests")
        findings = []
        if failed:
            findings = [
                line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))
            ]
            findings = findings or output.splitlines()[-10:] or [f"pytest exit {done.returncode}"]
        return AgentResult(
            outcome=Outcome.FAILED if failed else Outcome.SUCCEEDED,
            outputs={"junit": str(junit)} if junit.exists() else {},
            metrics={key: float(value) for key, value in counts.items()},
            findings=findings,
            log_excerpt="\n".join(output.splitlines()[-20:]),
            quality=0.0 if failed else 1.0,
        )
