"""bench/memory_audit.py still runs: a few entries on SQLite, without any timing assertion."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "memory_audit.py"


@pytest.mark.slow
def test_the_audit_benchmark_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("plan2flow_bench_memory_audit", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--n", "20", "--threads", "2", "--backends", "sqlite"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    sqlite = report["sqlite"]
    assert set(sqlite) == {
        "per_transaction",
        "batched_100",
        "keyed",
        "threads",
        "seq_conflicts",
        "verify",
        "entries",
    }
    assert sqlite["entries"] == 50 + 4 * 3 * 20
    assert sqlite["seq_conflicts"] == 0
    assert "postgresql" not in report
