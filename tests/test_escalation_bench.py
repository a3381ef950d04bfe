"""bench/escalation.py still runs: small numbers, in-process, without timing assertions."""

from __future__ import annotations

import json

import pytest
from support import load_bench


@pytest.mark.slow
def test_the_benchmark_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("escalation")
    args = ["--calls", "3", "--corpus-mib", "0.05", "--scoring-rounds", "1"]
    assert bench.main(args) == 0
    (line,) = capsys.readouterr().out.splitlines()
    report = json.loads(line)
    assert report.keys() >= {
        "http_floor_ms",
        "local_added_ms",
        "remote_added_ms",
        "redaction_ms",
        "scoring_s_per_variant",
        "chain_s",
        "redaction_mib_s",
        "restore_mib_s",
    }
    assert set(report["scoring_s_per_variant"]) == {"with_mypy", "without_mypy"}
    assert report["redaction_mib_s"] > 0 and report["chain_s"] > 0
