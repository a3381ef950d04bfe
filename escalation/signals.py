"""The signals of a variant, measured by running real tools on its files.

In order of trust: the tests pass (pytest on the tests rendered from the spec's examples, never
on tests a model wrote), the module parses and imports, mypy's type errors, ruff's findings.
Model-written code runs here, so every tool runs in a child process with a deadline, in the
variant's own directory, with an environment of its own: no API key of this process reaches it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

TOOL_TIMEOUT_S = 60.0
LINT_RULES = "E,F,W,B"
"""ruff's rules for the lint signal: fixed here, so a score never depends on a config file."""


@dataclasses.dataclass(frozen=True)
class Measured:
    """What the tools found; None where a signal was not measured."""

    parses: bool
    imports: bool | None = None
    tests_passed: frozenset[str] | None = None
    tests_total: int | None = None
    type_errors: int | None = None
    lint_findings: int | None = None
    seconds: float = 0.0


def _environment(directory: Path, paths: Sequence[Path]) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "PYTHONPATH": os.pathsep.join(str(p) for p in [directory, *paths]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONHASHSEED": "0",
    }


def _run(argv: list[str], directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, returncode=-9, stdout="", stderr="timed out")


def _passed_tests(report: Path) -> tuple[frozenset[str], int] | None:
    """The passed test ids and the number of tests of a JUnit XML report written by pytest."""
    try:
        root = ElementTree.parse(report).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    passed, total = set(), 0
    for case in root.iter("testcase"):
        total += 1
        outcome = {child.tag for child in case}
        if not outcome & {"failure", "error", "skipped"}:
            passed.add(f"{case.get('classname', '')}::{case.get('name', '')}")
    return frozenset(passed), total


def _tests(directory: Path, test_file: str, env: dict[str, str]) -> tuple[frozenset[str], int]:
    """The passed tests and their number. The report counts only when pytest's exit status
    (0: all passed, 1: some failed), its summary line and the test file's own count of tests
    agree with it: code that ends the process itself, or writes a report of its own, passes
    nothing."""
    report = directory / ".junit.xml"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    done = _run(
        [*argv, f"--junitxml={report}", "--rootdir", str(directory), test_file], directory, env
    )
    found = _passed_tests(report)
    expected = _test_functions(directory / test_file)
    if found is None:
        return frozenset(), max(expected, 1)
    passed, total = found
    all_passed = total > 0 and len(passed) == total
    summary = _SUMMARY.search(done.stdout)
    told = int(summary.group(1)) if summary else 0
    trusted = (
        (done.returncode, all_passed) in {(0, True), (1, False)}
        and told == len(passed)
        and (expected == 0 or total == expected)
    )
    if not trusted:
        return frozenset(), max(total, expected, 1)
    return passed, total


_SUMMARY = re.compile(r"\b(\d+) passed\b")


def _test_functions(test_file: Path) -> int:
    """How many test functions the (trusted) test file defines at its top level."""
    try:
        tree = ast.parse(test_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return 0
    return sum(
        isinstance(node, ast.FunctionDef) and node.name.startswith("test") for node in tree.body
    )


def _type_errors(directory: Path, module_file: str, env: dict[str, str]) -> int | None:
    if importlib.util.find_spec("mypy") is None:
        return None
    cache = directory.parent / ".mypy_cache"
    argv = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary"]
    done = _run([*argv, "--cache-dir", str(cache), module_file], directory, env)
    return sum(": error:" in line for line in done.stdout.splitlines())


def _lint_findings(directory: Path, module_file: str, env: dict[str, str]) -> int | None:
    argv = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--isolated",
        "--no-cache",
        "--select",
        LINT_RULES,
    ]
    done = _run([*argv, "--output-format", "json", module_file], directory, env)
    try:
        return len(json.loads(done.stdout))
    except ValueError:
        return None


def measure(
    directory: Path,
    module: str,
    *,
    test_file: str | None,
    dependency_paths: Sequence[Path] = (),
    signals: frozenset[str] = frozenset({"tests", "parses", "types", "lint"}),
) -> Measured:
    """Measure the variant written in ``directory`` (``<module>.py`` and its tests); only the
    ``signals`` asked for run (a signal of weight 0 costs nothing)."""
    started = time.perf_counter()
    module_file = f"{module}.py"
    try:
        ast.parse((directory / module_file).read_text(encoding="utf-8"), module_file)
    except (OSError, SyntaxError, ValueError):
        return Measured(parses=False, seconds=time.perf_counter() - started)
    env = _environment(directory, dependency_paths)
    imported = _run([sys.executable, "-c", f"import {module}"], directory, env)
    passed: frozenset[str] | None = None
    total: int | None = None
    if "tests" in signals and test_file is not None and (directory / test_file).exists():
        passed, total = _tests(directory, test_file, env)
    return Measured(
        parses=True,
        imports=imported.returncode == 0,
        tests_passed=passed,
        tests_total=total,
        type_errors=_type_errors(directory, module_file, env) if "types" in signals else None,
        lint_findings=_lint_findings(directory, module_file, env) if "lint" in signals else None,
        seconds=time.perf_counter() - started,
    )
