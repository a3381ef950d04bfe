"""Scoring variants on real signals: pytest, import, mypy and ruff run on real files; the
weighted score, agreement, and the choice among competing variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from plan2flow.escalation.scoring import Contender, agreement, best, score, score_all
from plan2flow.escalation.signals import Measured, measure

TESTS = """\
from adder import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3
"""
NO_TYPES = frozenset({"tests", "parses", "lint"})


def variant(tmp_path: Path, code: str, tests: str = TESTS, name: str = "v") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "adder.py").write_text(code, encoding="utf-8")
    (directory / "test_adder.py").write_text(tests, encoding="utf-8")
    return directory


def measured(directory: Path, signals: frozenset[str] = NO_TYPES) -> Measured:
    return measure(directory, "adder", test_file="test_adder.py", signals=signals)


@pytest.mark.slow
def test_a_correct_module_passes_every_test(tmp_path: Path) -> None:
    found = measured(variant(tmp_path, "def add(a: int, b: int) -> int:\n    return a + b\n"))
    assert (found.parses, found.imports, found.tests_total, found.lint_findings) == (
        True,
        True,
        2,
        0,
    )
    assert found.tests_passed == {"test_adder::test_small", "test_adder::test_negative"}
    assert found.type_errors is None  # not asked for


def test_a_wrong_module_passes_some(tmp_path: Path) -> None:
    code = "def add(a, b):\n    return abs(a) + abs(b)\n"
    found = measured(variant(tmp_path, code))
    assert found.tests_passed == {"test_adder::test_small"} and found.tests_total == 2


def test_code_that_does_not_parse_is_not_run(tmp_path: Path) -> None:
    found = measured(variant(tmp_path, "def add(a, b) return a + b\n"))
    assert found == Measured(parses=False, seconds=found.seconds)
    assert score_all([found], {"tests": 1.0, "parses": 1.0})[0].score == 0.0


@pytest.mark.slow
def test_a_module_that_fails_to_import(tmp_path: Path) -> None:
    found = measured(
        variant(tmp_path, "import not_a_module_anywhere\n\ndef add(a, b):\n    pass\n")
    )
    assert found.imports is False and found.tests_passed == frozenset()
    (scored,) = score_all([found], {"tests": 1.0, "parses": 1.0, "lint": 0.0})
    assert scored.values["parses"] == 0.0 and scored.score == 0.0


def test_lint_findings_are_counted(tmp_path: Path) -> None:
    code = "import os\nimport sys\n\ndef add(a, b):\n    return a + b\n"
    assert measured(variant(tmp_path, code)).lint_findings == 2


def test_code_ending_the_test_process_itself_passes_nothing(tmp_path: Path) -> None:
    code = (
        "import os, pathlib\n"
        "pathlib.Path('.junit.xml').write_text('<testsuites><testsuite><testcase "
        'classname="test_adder" name="test_small"/></testsuite></testsuites>\')\n'
        "os._exit(0)\n"
    )
    found = measured(variant(tmp_path, code))
    assert found.tests_passed == frozenset()


def test_the_model_code_sees_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak-0123456789")
    tests = "import os\n\ndef test_no_key():\n    assert 'OPENAI_API_KEY' not in os.environ\n"
    found = measured(variant(tmp_path, "def add(a, b):\n    return a + b\n", tests))
    assert found.tests_passed == {"test_adder::test_no_key"}


@pytest.mark.slow
def test_type_errors_are_counted_by_mypy(tmp_path: Path) -> None:
    code = "def add(a: int, b: int) -> str:\n    return a + b\n\nx: int = 'one'\n"
    found = measured(variant(tmp_path, code), frozenset({"types"}))
    assert found.type_errors == 2 and found.tests_passed is None and found.lint_findings is None


def test_signal_values_and_the_weighted_score() -> None:
    found = Measured(
        parses=True,
        imports=True,
        tests_passed=frozenset({"a"}),
        tests_total=2,
        type_errors=1,
        lint_findings=20,
    )
    weights = {"tests": 0.5, "parses": 0.15, "types": 0.15, "lint": 0.1, "agreement": 0.1}
    (scored,) = score_all([found], weights)
    assert scored.values == {
        "tests": 0.5,
        "parses": 1.0,
        "types": 0.8,
        "lint": 0.0,
        "agreement": None,
    }
    assert scored.score == pytest.approx((0.25 + 0.15 + 0.12 + 0.0) / 0.9, abs=1e-6)


def test_without_any_weighted_signal_measured_the_score_is_whether_it_imports() -> None:
    assert score({"tests": None, "parses": 1.0}, {"tests": 1.0}) == 1.0
    assert score({"tests": None, "parses": 0.0}, {"tests": 1.0}) == 0.0


def test_agreement_is_the_share_of_others_passing_the_same_tests() -> None:
    a, b = frozenset({"t1", "t2"}), frozenset({"t1"})
    assert agreement([a, a, b, None]) == [0.5, 0.5, 0.0, None]
    assert agreement([a, None]) == [None, None]


def test_variants_without_code_score_zero() -> None:
    (scored,) = score_all([None], {"tests": 1.0, "parses": 1.0})
    assert scored.score == 0.0 and scored.values == {"tests": None, "parses": 0.0}


def test_the_best_is_the_highest_then_consensus_then_cost() -> None:
    both, one = frozenset({"t1", "t2"}), frozenset({"t1"})
    assert best([Contender(0.5, one, 0.0), Contender(0.9, both, 1.0)]) == 1
    assert (
        best([Contender(0.9, one, 0.0), Contender(0.9, both, 0.5), Contender(0.9, both, 0.2)]) == 2
    )
    assert best([Contender(0.9, both, 0.3), Contender(0.9, both, 0.1)]) == 1
    assert best([Contender(0.9, None, 0.0), Contender(0.9, None, 0.0)]) == 0
    assert best([]) is None
