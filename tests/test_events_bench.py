"""The event bus benchmark still runs: tiny sizes, no timing assertions."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from events_nats import need_shared_nats
from support import load_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("events")


def test_memory_only_prints_one_json_line(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--n", "200", "--tasks", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["n"] == 200 and "nats" not in report
    assert set(report["memory"]) == {
        "publish_per_s",
        "consume_per_s",
        "json_round_trip_per_s",
        "per_task_us",
    }


@pytest.mark.slow
def test_with_nats(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    url = need_shared_nats()
    assert bench.main(["--n", "200", "--tasks", "20", "--url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nats"]["spooled"] == 0 and report["nats"]["publish_sync_per_s"] > 0


def test_rejects_bad_sizes(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--n", "0"])
