"""The run benchmarks still run: tiny sizes, on the test harness's Prefect API, no timings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def run_overhead() -> ModuleType:
    # Under the name the benchmarks use, so that parallel.py finds and reuses this module.
    name = "plan2flow_bench_run_overhead"
    spec = importlib.util.spec_from_file_location(name, BENCH / "run_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def parallel(run_overhead: ModuleType) -> ModuleType:
    return run_overhead._load_bench_module("parallel")  # type: ignore[no-any-return]


def test_overhead_plan_is_the_compile_benchmarks_plan_with_max_parallelism(
    run_overhead: ModuleType,
) -> None:
    text = run_overhead.plan_text(30, max_parallelism=7)
    assert text == run_overhead.plan_text(30, max_parallelism=7)
    plan = yaml.safe_load(text)
    assert plan["defaults"] == {"max_parallelism": 7}
    assert len(plan["tasks"]) == 30
    assert all(task["type"] == "noop" for task in plan["tasks"])


def test_run_overhead_measures_all_variants(
    run_overhead: ModuleType, prefect_api: None, run_home: Path, tmp_path: Path
) -> None:
    report = run_overhead.measure(5, 1, directory=tmp_path / "build", max_workers=2)
    assert report["n"] == 5 and report["rounds"] == 1
    assert report["api"] != "ephemeral"  # the harness's server
    for kind in ("wall", "body"):
        figures = report[kind]
        assert set(figures["median_seconds"]) == {"generated", "handwritten", "bare", "empty"}
        assert all(len(values) == 1 for values in figures["seconds"].values())
        assert figures["ratio"] > 0
    assert set(report["settle_median_seconds"]) == set(report["wall"]["median_seconds"])
    # The generated flow persisted its results in the run_home fixture's result store.
    assert any((run_home / "results").iterdir())


def test_parallel_runs_with_one_and_with_many_workers(
    parallel: ModuleType,
    prefect_api: None,
    run_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # bench_sleep, for the python tasks
    report = parallel.measure(4, 0.01, directory=tmp_path / "build", workers=2)
    assert report["tasks"] == 4 and report["workers"] == 2 and report["kind"] == "python"
    for kind in ("wall", "body"):
        assert set(report[kind]["seconds"]) == {"1", "2"}
        assert report[kind]["speedup"] > 0


def test_parallel_shell_plan_compiles(parallel: ModuleType) -> None:
    from plan2flow.compiler import compile_plan

    result = compile_plan(parallel.plan_text(3, 0.5, 4, kind="shell"), "plan.yaml")
    tasks = result.graph.document["tasks"]
    assert [task["params"]["argv"] for task in tasks] == [["sleep", "0.5"]] * 3
    assert all(not task["depends_on"] for task in tasks)


@pytest.mark.parametrize("argv", [["0"], ["5", "--rounds", "0"]])
def test_run_overhead_rejects_bad_sizes(run_overhead: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        run_overhead.main(argv)
