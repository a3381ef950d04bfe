"""The validation-size benchmark still runs: tiny plans, one format, no timing assertion."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from support import load_bench

from plan2flow.compiler import PlanError, compile_plan


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("validate_size")


def test_shapes_are_plans_of_the_size_asked(bench: ModuleType) -> None:
    valid = bench.tasks_plan(50_000)
    assert 50_000 <= len(valid) < 50_100 and valid == bench.tasks_plan(50_000)
    assert compile_plan(valid, "p.yaml").graph.document["edges"]
    errors = bench.errors_plan(20_000)
    with pytest.raises(PlanError) as caught:
        compile_plan(errors, "p.yaml")
    assert {d.code for d in caught.value.diagnostics} == {"P2F102"}


@pytest.mark.slow
def test_main_prints_figures_per_megabyte(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["0.01", "--formats", "json", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["baseline"]) == {"json"}
    assert [(r["shape"], r["format"], r["exit"]) for r in report["runs"]] == [
        ("tasks", "json", 0),
        ("errors", "json", 1),
    ]
    for run in report["runs"]:
        assert run.keys() >= {"seconds", "peak_mb", "out_mb", "seconds_per_mb", "peak_mb_per_mb"}
    assert bench.main(["0.01", "--formats", "human", "--shapes", "errors"]) == 0
    assert "s/MB" in capsys.readouterr().out
