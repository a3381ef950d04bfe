"""The examples in docstrings run as tests, each module imported once, by its installed name.

Collecting `compiler/*.py` with `--doctest-modules` would import the tree a second time as
`compiler.*`, beside `plan2flow.compiler.*`: two copies of every model and registry."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

PARTS = tuple(
    f"plan2flow.{part}"
    for part in (
        "compiler",
        "flows",
        "agents",
        "escalation",
        "events",
        "server",
        "cli",
        "home",
        "memory",
        "observability",
    )
)
SCRIPTS = ("plan2flow.memory.db.migrations.",)
"""Run by their tool, not imported: Alembic's environment and revisions."""


def _modules() -> list[str]:
    names = []
    for part in PARTS:
        package = importlib.import_module(part)
        names.append(part)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{part}."):
            if not info.name.startswith(SCRIPTS):
                names.append(info.name)
    return sorted(names)


def _has_examples(name: str) -> bool:
    found = doctest.DocTestFinder().find(importlib.import_module(name))
    return any(test.examples for test in found)


MODULES = _modules()
WITH_EXAMPLES = [name for name in MODULES if _has_examples(name)]


def test_every_module_with_examples_in_its_source_is_run() -> None:
    """Discovery must not lose examples silently (a module it cannot import, a renamed part)."""
    written = {
        name
        for name in MODULES
        if ">>> " in Path(str(importlib.import_module(name).__file__)).read_text("utf-8")
    }
    assert written and written == set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, f"{failed} of {attempted} examples in {name} failed (see the output)"
