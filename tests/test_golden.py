"""Golden files: the compiler's exact bytes for every example plan.

Valid plans → ``tests/golden/valid/<case>/taskgraph.json`` and ``flow.py``; invalid plans
(compiled with ``--strict``) → ``tests/golden/invalid/<case>/errors.txt``, the exact human
diagnostics.
Update with ``pytest tests/test_golden.py --snapshot-update`` and review the diff like code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from plan2flow.compiler import PlanError, compile_plan
from plan2flow.compiler.load import SourceMap
from plan2flow.compiler.report import format_human

from golden_files import golden_file

ROOT = Path(__file__).parents[1]
VALID = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
INVALID = sorted((ROOT / "examples" / "plans" / "invalid").glob("*.yaml"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("plan", VALID, ids=[p.stem for p in VALID])
def test_valid_plan_matches_golden_taskgraph(plan: Path, snapshot: SnapshotAssertion) -> None:
    result = compile_plan(plan.read_bytes(), _relative(plan))
    assert result.warnings == ()
    golden = snapshot.use_extension(golden_file(f"valid/{plan.stem}/taskgraph.json"))
    assert result.graph.text == golden
    module = snapshot.use_extension(golden_file(f"valid/{plan.stem}/flow.py"))
    assert result.flow_source == module


@pytest.mark.parametrize("plan", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_plan_matches_golden_errors(plan: Path, snapshot: SnapshotAssertion) -> None:
    with pytest.raises(PlanError) as caught:
        compile_plan(plan.read_bytes(), _relative(plan), strict=True)
    text = plan.read_bytes().decode("utf-8", errors="replace")
    source = SourceMap(_relative(plan), text)
    rendered = format_human(caught.value.diagnostics, lambda _file, line: source.line_text(line))
    golden = snapshot.use_extension(golden_file(f"invalid/{plan.stem}/errors.txt"))
    assert rendered == golden


def test_every_error_code_has_an_invalid_example() -> None:
    """Each code is shown by at least one example (P2F001/P2F002/P2F210 need files, not a plan:
    they are covered by the CLI tests; P2F010 needs over 1,000 problems: tests/test_limits.py)."""
    from plan2flow.compiler import CODES

    shown = set()
    for plan in INVALID:
        try:
            compile_plan(plan.read_bytes(), _relative(plan), strict=True)
        except PlanError as error:
            shown.update(d.code for d in error.diagnostics)
    assert set(CODES) - shown == {"P2F001", "P2F002", "P2F010", "P2F210"}
