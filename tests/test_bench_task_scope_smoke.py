"""bench/task_scope.py still runs: a few scopes per mode, one round, no timing asserted."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from support import load_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("task_scope")


@pytest.mark.slow
def test_main_prints_one_json_line_with_every_mode(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["20", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report["us_per_task"]) == {"off", "memory", "otlp"}
    assert all(value > 0 for value in report["us_per_task"].values())
    assert report["us_over_off"]["off"] == 0


def test_rounds_must_be_positive(bench: ModuleType) -> None:
    with pytest.raises(SystemExit) as stopped:
        bench.main(["10", "--rounds", "0"])
    assert stopped.value.code == 2
