"""The compile benchmark still runs: a small plan, in-process, without any timing assertion."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
import yaml
from support import load_bench

KEYS = {
    "n",
    "tasks",
    "edges",
    "bytes",
    "seconds",
    "floor_seconds",
    "ratio",
    "peak_tracemalloc_mib",
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("compile")


def test_plan_is_deterministic_layered_yaml(bench: ModuleType) -> None:
    text = bench.build_plan(200)
    assert text == bench.build_plan(200)
    tasks = yaml.safe_load(text)["tasks"]
    assert [task["id"] for task in tasks] == sorted(task["id"] for task in tasks)
    assert len(tasks) == 200
    assert all(1 <= len(task.get("depends_on", [])) <= 3 for task in tasks[14:])


@pytest.mark.slow
def test_main_prints_one_json_line(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["200", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report.keys() >= KEYS
    assert report["n"] == report["tasks"] == 200
    assert report["edges"] > 0
