"""bench/memory_audit.py still runs: a few entries on SQLite, without any timing assertion."""

from __future__ import annotations

import json

import pytest
from support import load_bench


@pytest.mark.slow
def test_the_audit_benchmark_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("memory_audit")
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
