"""bench/memory.py still runs: one small round on SQLite and PostgreSQL, no timing asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memory_pg import available
from support import load_bench

LIST_KEYS = {
    "rows",
    "insert_s",
    "other_tenant_rows",
    "first_page_ms",
    "by_plan_ms",
    "by_task_ms",
    "by_label_ms",
    "next_page_ms",
    "command_ms",
}


@pytest.mark.slow
def test_main_prints_one_json_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    module = load_bench("memory")
    backends = "sqlite,postgresql" if available() else "sqlite"
    argv = ["--sizes", "1", "--rounds", "1", "--rows", "300", "--n", "8", "--dir", str(tmp_path)]
    assert module.main([*argv, "--backends", backends]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    transfer = report["artifacts"]["1MiB"]
    assert {"put", "get", "put_sensitive", "get_sensitive", "copyfile", "ratios"} <= set(transfer)
    assert all(figure["ms"] > 0 for name, figure in transfer.items() if name != "ratios")
    for backend in backends.split(","):
        figures = report[backend]
        assert figures["list"].keys() == LIST_KEYS
        assert figures["list"]["rows"] == 300 and figures["small_puts_per_s"] > 0
        assert all(value > 0 for value in figures["tenant_binding_us"].values())
        assert figures["audit"]["per_transaction"] > 0
    assert list(tmp_path.iterdir()) == []
