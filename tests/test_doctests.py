"""The examples in docstrings run as tests, each module imported once, by its installed name.

Collecting `compiler/*.py` with `--doctest-modules` would import the tree a second time as
`compiler.*`, beside `plan2flow.compiler.*`: two copies of every model and registry."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = (
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
SCRIPTS = ("plan2flow.memory.db.migrations.",)
"""Run by their tool, not imported: Alembic's environment and revisions."""


def _modules() -> dict[str, Path]:
    """Every module of the parts by its installed name, found in the tree without importing
    it: collection stays cheap in every xdist worker (importing them all took 3 s of CPU)."""
    found = {}
    for part in PARTS:
        for path in (ROOT / part).rglob("*.py"):
            names = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("plan2flow", *names)).removesuffix(".__init__")
            if not name.startswith(SCRIPTS):
                found[name] = path
    return dict(sorted(found.items()))


MODULES = _modules()
WITH_EXAMPLES = [name for name, path in MODULES.items() if ">>> " in path.read_text("utf-8")]


def test_every_module_with_examples_is_run() -> None:
    """Discovery must not lose examples silently: the modules doctest finds examples in, once
    imported, are exactly the ones whose source shows a prompt (a module it cannot import, a
    renamed part, an example written some other way would part them)."""
    assert len(MODULES) > 100 and "plan2flow.compiler" in MODULES
    found = {
        name
        for name in MODULES
        if any(
            test.examples for test in doctest.DocTestFinder().find(importlib.import_module(name))
        )
    }
    assert found and found == set(WITH_EXAMPLES)
    for name in MODULES:
        assert Path(str(importlib.import_module(name).__file__)).resolve() == MODULES[name]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, f"{failed} of {attempted} examples in {name} failed (see the output)"
