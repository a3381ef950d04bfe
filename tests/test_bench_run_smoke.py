"""The run benchmarks still run: tiny sizes, on the test harness's Prefect API, no timings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from support import load_bench

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def run_overhead() -> ModuleType:
    # Under the name the benchmarks use, so that parallel.py finds and reuses this module.
    return load_bench("run_overhead")


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


def test_a_figure_that_is_zero_everywhere_has_no_ratio(run_overhead: ModuleType) -> None:
    """A Prefect API that is no child process of the benchmark shows no server CPU at all."""
    zeros = {name: [0.0] for name in ("generated", "handwritten", "bare", "empty")}
    summary = run_overhead.summarize(zeros, 5)
    assert (summary["ratio"], summary["ratio_marginal"], summary["ratio_vs_bare"]) == (None,) * 3


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


PINNING = """
import importlib.util, os, sys, threading
spec = importlib.util.spec_from_file_location("run_overhead", sys.argv[1])
bench = sys.modules["run_overhead"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
flow_cpu, others = bench.split_cpus()
stop = threading.Event()
early = threading.Thread(target=stop.wait)
early.start()
bench.pin_threads({flow_cpu})
late = threading.Thread(target=stop.wait)
late.start()
cpus = {tuple(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
stop.set()
print(flow_cpu, sorted(others), sorted(cpus))
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="--pin needs Linux and 2 CPUs",
)
def test_pinning_moves_every_thread_and_new_ones_inherit_it() -> None:
    # In a process of its own: the test process's CPUs stay as they are.
    done = subprocess.run(
        [sys.executable, "-c", PINNING, str(BENCH / "run_overhead.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    flow_cpu, others, cpus = done.stdout.split(" ", 2)
    allowed = sorted(os.sched_getaffinity(0))
    assert int(flow_cpu) == allowed[-1] and others == str(allowed[:-1]).replace(" ", "")
    assert cpus.strip() == f"[({flow_cpu},)]"


def test_the_median_interval_holds_the_median_with_95_percent(run_overhead: ModuleType) -> None:
    interval = run_overhead.median_interval
    assert interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # 5 values cannot give 95 %
    assert interval([5.0, 1.0, 4.0, 2.0, 3.0, 6.0]) == [1.0, 6.0]  # 1 - 2/64 = 96.9 %
    assert interval([float(v) for v in range(9, 0, -1)]) == [2.0, 8.0]  # 1 - 20/512 = 96.1 %
    assert interval([float(v) for v in range(1, 13)]) == [3.0, 10.0]  # 96.1 %, not 4..9 (85 %)


def test_each_mode_is_compared_with_the_first_round_by_round(run_overhead: ModuleType) -> None:
    def timings(cpus: list[float]) -> list[object]:
        return [run_overhead.Timing(wall=1.0, body=1.0, cpu=cpu) for cpu in cpus]

    runs = {
        "off": {"generated": timings([10.0, 12.0, 11.0, 10.0, 13.0, 10.0])},
        "on": {"generated": timings([10.5, 12.6, 11.0, 10.2, 13.0, 10.4])},
    }
    figures = run_overhead.mode_figures(runs, "off", 1000)
    cpu = figures["ratio_to_off"]["on"]["generated"]["cpu"]
    assert cpu == {
        "of_medians": 1.024,  # 10.75 / 10.5
        "of_minima": 1.02,  # 10.2 / 10.0
        "median_of_rounds": 1.03,  # of 1.05, 1.05, 1.0, 1.02, 1.0, 1.04
        "median_of_rounds_ci95": [1.0, 1.05],
        "rounds_min": 1.0,
        "rounds_max": 1.05,
    }
    assert figures["seconds"]["on"]["generated"]["cpu"]["median"] == 10.75
