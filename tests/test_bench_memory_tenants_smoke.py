"""The tenant-binding benchmark still runs: a few transactions, without any timing assertion."""

from __future__ import annotations

import json

import pytest
from memory_pg import available
from support import load_bench, need_service

KEYS = {
    "n",
    "core_us",
    "core_set_config_us",
    "core_set_config_reset_us",
    "orm_bound_us",
    "session_us",
    "sqlite_plain_us",
    "sqlite_session_us",
}


@pytest.mark.slow
def test_main_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    need_service(available(), "PostgreSQL is not running on 127.0.0.1:5432")
    module = load_bench("memory_tenants")
    assert module.main(["--n", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report.keys() == KEYS
    assert all(value > 0 for value in report.values())
