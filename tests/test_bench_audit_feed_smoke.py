"""bench/audit_feed.py still runs: one small round, no timing asserted."""

from __future__ import annotations

import json

import pytest
from support import load_bench


def test_main_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_bench("audit_feed")
    assert module.main(["--n", "30", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["events"] == 30
    for way in ("bus_only", "one_transaction_per_event", "batched"):
        assert report[f"{way}_us_per_event"] > 0
        assert len(report[f"{way}_rounds"]) == 1
    assert report["batched_vs_per_event"] > 0
