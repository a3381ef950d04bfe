"""Sizes that multiply are refused before anything is expanded, with a located P2F105.

Each case here used to exhaust memory or time: a 1.2 KB matrix of 312 million combinations, a
115 KB chain of components (161 s, 11 GB), 5,000 misspelled references (424 s).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import Limits, PlanError, compile_plan
from plan2flow.compiler.decompose.budget import capped_product, shown_count
from plan2flow.compiler.validate.suggest import Suggester

HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: t}\n"


def refused(body: str, **options: Any) -> list[tuple[str, str, str, int | None]]:
    """The diagnostics of a plan that must be refused before the work it bounds: measured in
    memory, which does not depend on how busy the machine is (expanding would take gigabytes)."""
    tracemalloc.start()
    try:
        with pytest.raises(PlanError) as caught:
            compile_plan(HEAD + body, "p.yaml", **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"refused, but only after using {peak} bytes"
    return [(d.code, d.message, d.pointer, d.line) for d in caught.value.diagnostics]


def axis(count: int, prefix: str = "v") -> str:
    return "[" + ", ".join(f"{prefix}{i}" for i in range(count)) + "]"


def test_a_matrix_is_sized_from_its_axes_before_it_is_expanded() -> None:
    axes = "".join(f"      a{i}: {axis(50)}\n" for i in range(5))
    found = refused(f"tasks:\n  - id: t\n    type: noop\n    matrix:\n{axes}")
    assert found == [
        (
            "P2F105",
            "matrix of 't' expands to 312500000 tasks; the limit is 256",
            "/tasks/0/matrix",
            8,
        )
    ]


def test_a_product_of_many_axes_is_never_computed_in_full() -> None:
    axes = ", ".join(f"a{i}: [x, y]" for i in range(2000))
    found = refused(f"tasks:\n  - {{id: t, type: noop, matrix: {{{axes}}}}}\n")
    assert found == [
        (
            "P2F105",
            "matrix of 't' expands to more than 1000000000 tasks; the limit is 256",
            "/tasks/0/matrix",
            5,
        )
    ]
    assert capped_product([64] * 100_000, 10) == 11
    assert shown_count(10**9) == "1000000000"


def test_a_component_matrix_is_sized_too() -> None:
    found = refused(f"components:\n  - name: c\n    matrix: {{a: {axis(20)}, b: {axis(20)}}}\n")
    assert found == [
        (
            "P2F105",
            "matrix of 'c.test' expands to 400 tasks; the limit is 256",
            "/components/0/matrix",
            6,
        )
    ]


def test_matrices_of_many_tasks_are_counted_together() -> None:
    tasks = "".join(f"  - {{id: t{i}, type: noop, matrix: {{v: {axis(10)}}}}}\n" for i in range(11))
    found = refused(f"tasks:\n{tasks}", limits=Limits(max_expanded_tasks=100))
    assert found == [
        ("P2F105", "the plan expands to 110 tasks; the limit is 100", "/tasks/10/matrix", 15)
    ]


def test_fan_in_between_matrix_tasks_is_counted_per_expansion() -> None:
    matrix = f"{{x: {axis(64)}, y: {axis(4)}}}"
    tasks = f"  - {{id: a, type: noop, matrix: {matrix}}}\n" + "".join(
        f"  - {{id: b{i}, type: noop, depends_on: [a], matrix: {matrix}}}\n" for i in range(8)
    )
    found = refused(f"tasks:\n{tasks}")
    assert found == [
        (
            "P2F105",
            "the plan's dependencies and inputs expand to 524288 edges; the limit is 500000 "
            "('b7' alone has 65536)",
            "/tasks/8",
            13,
        )
    ]


def test_large_params_repeated_by_a_matrix_are_counted() -> None:
    big = "x" * 100_000
    matrix = f"{{v: {axis(64)}, w: {axis(4)}}}"
    found = refused(
        f"tasks:\n  - {{id: a, type: shell, params: {{argv: [{big}]}}, matrix: {matrix}}}\n",
        limits=Limits(max_expanded_bytes=10_000_000),
    )
    assert found == [
        (
            "P2F105",
            "matrices repeat 25513770 bytes of params and descriptions; the limit is 10000000",
            "/tasks/0/matrix",
            5,
        )
    ]


@pytest.mark.slow
def test_a_long_chain_of_components_is_refused_not_squared() -> None:
    chain = "".join(
        f"  - {{name: c{i}" + (f", depends_on: [c{i - 1}]}}\n" if i else "}\n") for i in range(3000)
    )
    found = refused(f"components:\n{chain}")
    assert found == [
        (
            "P2F105",
            "the components up to 'c1000' depend on too many components, directly or not: "
            "following their dependencies takes more than 500000 steps",
            "/components/1000/depends_on",
            1005,
        )
    ]


def test_too_many_written_tasks_are_refused_before_validation() -> None:
    tasks = "".join(f"  - {{id: t{i}, type: noop, bogus: 1}}\n" for i in range(11))
    found = refused(f"tasks:\n{tasks}", limits=Limits(max_tasks=10))
    assert found == [
        ("P2F105", "the plan has 11 tasks and 0 components; the limit is 10 together", "/tasks", 5)
    ]


@pytest.mark.slow
def test_hints_for_many_misspellings_stay_within_a_budget() -> None:
    tasks = "".join(
        f"  - {{id: task{i}, type: noop, depends_on: [tsak{i}]}}\n" for i in range(3000)
    )
    with pytest.raises(PlanError) as caught:
        compile_plan(HEAD + f"tasks:\n{tasks}", "p.yaml", limits=Limits(max_diagnostics=5000))
    hints = [d.hint for d in caught.value.diagnostics]
    assert len(hints) == 3000
    assert hints[0] == "did you mean 'task0'?"
    assert hints[-1] is None


def test_a_suggester_stops_comparing_when_its_budget_is_spent() -> None:
    suggest = Suggester(["alpha", "beta", "gamma"], budget=7)
    assert suggest("alpah") == "did you mean 'alpha'?"
    assert suggest("bta") == "did you mean 'beta'?"
    assert suggest("alpah") == "did you mean 'alpha'?", "a word seen before costs nothing"
    assert suggest("gama") is None


def test_the_cli_reports_a_matrix_bomb_without_a_traceback(tmp_path: Path) -> None:
    axes = "".join(f"      a{i}: {axis(50)}\n" for i in range(5))
    plan = tmp_path / "bomb.yaml"
    plan.write_text(HEAD + f"tasks:\n  - id: t\n    type: noop\n    matrix:\n{axes}", "utf-8")
    result = CliRunner().invoke(app, ["validate", str(plan)])
    assert result.exit_code == 1
    assert f"{plan}:8:7: P2F105 error: matrix of 't' expands to 312500000 tasks" in result.output
    assert "Traceback" not in result.output and "MemoryError" not in result.output


@pytest.mark.slow
def test_diagnostics_past_the_limit_are_counted_not_reported() -> None:
    tasks = "".join(f"  - {{id: t{i}, type: noop, colour: red}}\n" for i in range(1500))
    found = refused(f"tasks:\n{tasks}")
    assert len(found) == 1001
    (note,) = [item for item in found if item[0] == "P2F010"]
    assert note == (
        "P2F010",
        "500 more problems are not reported; the limit is 1000 per plan",
        "/tasks/999/colour",
        1004,
    )
    assert found[-1][:3] == ("P2F102", "unknown field 'colour'", "/tasks/999/colour")


def test_warnings_past_the_limit_are_counted_and_keep_the_plan_valid() -> None:
    tasks = "".join(f"  - {{id: t{i}, type: noop}}\n" for i in range(30))
    result = compile_plan(HEAD + f"tasks:\n{tasks}", "p.yaml", limits=Limits(max_diagnostics=10))
    assert [d.code for d in result.warnings] == ["P2F303"] * 10 + ["P2F010"]
    assert result.warnings[-1].message.startswith("20 more problems are not reported")


def test_an_integer_too_long_to_read_is_reported_briefly() -> None:
    found = refused(f"tasks:\n  - {{id: a, type: noop, retries: {'9' * 100_000}}}\n")
    assert (
        "P2F105",
        "integer of 100000 digits; at most 4300 are read",
        "/tasks/0/retries",
        5,
    ) in found
