"""`plan2flow escalations list|show|stats` on a real journal, and their exit statuses."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.escalation.chain import ChainResult
from plan2flow.escalation.journal import append, make_record
from plan2flow.escalation.signals import Measured
from plan2flow.escalation.variants import Variant

runner = CliRunner()


def variant(label: str, tier: str, model: str | None, score: float, cost: float) -> Variant:
    measured = Measured(parses=True, imports=True, tests_passed=frozenset({"t"}), tests_total=2)
    return Variant(
        label,
        tier,
        model=model,
        score=score,
        cost_usd=cost,
        measured=measured,
        values={"tests": 0.5, "parses": 1.0},
        prompt_tokens=10,
        completion_tokens=5,
        estimated=tier == "remote" and model == "tiny",
        attempts=1,
    )


def record_into(journal: Path, plan: str, run: str, outcome: str, *variants: Variant) -> str:
    winner = variants[-1] if outcome == "kept" else None
    result = ChainResult(
        task_id="greeter.generate_code",
        outcome=outcome,
        tier_reached="remote" if outcome == "kept" else "human",
        reason="because",
        threshold=0.8,
        variants=list(variants),
        winner=winner,
        redactions={"EMAIL": 2},
    )
    record = make_record(
        result,
        tenant="default",
        plan=plan,
        flow_run_id=run,
        now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
    )
    append(record, journal)
    return record.id


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path))
    path = tmp_path / "escalations" / "journal.jsonl"
    local = variant("0-local-1", "local", None, 0.0, 0.0)
    big = variant("1-remote-1", "remote", "big", 0.9, 0.01)
    tiny = variant("1-remote-1", "remote", "tiny", 0.4, 0.002)
    other = variant("1-remote-1", "remote", "big", 0.8, 0.03)
    ids = [
        record_into(path, "shop", "r1", "kept", local, big),
        record_into(path, "shop", "r2", "failed", local, tiny),
        record_into(path, "blog", "r3", "kept", other),
    ]
    return path, ids


def test_list_filters_by_plan_and_run(journal: tuple[Path, list[str]]) -> None:
    _, ids = journal
    result = runner.invoke(app, ["escalations", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ids
    assert "kept at remote  winner 1-remote-1 0.900" in lines[0]
    assert "failed at human  winner -" in lines[1]
    shop = runner.invoke(
        app, ["escalations", "list", "--plan", "shop", "--run", "r2", "-f", "json"]
    )
    (only,) = json.loads(shop.stdout)
    assert (only["id"], only["outcome"], only["redactions"]) == (ids[1], "failed", {"EMAIL": 2})


def test_list_of_nothing_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path))
    result = runner.invoke(app, ["escalations", "list"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no escalations\n")


def test_show_by_prefix_with_every_variant(journal: tuple[Path, list[str]]) -> None:
    _, ids = journal
    result = runner.invoke(app, ["escalations", "show", ids[0][:6]])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"escalation {ids[0]}" in text and "outcome     kept at the remote tier" in text
    assert "redactions  EMAIL 2" in text and "1/2 tests" in text
    assert "tests 0.500, parses 1.000" in text
    data = json.loads(runner.invoke(app, ["escalations", "show", ids[1], "-f", "json"]).stdout)
    assert [v["model"] for v in data["variants"]] == [None, "tiny"]
    assert data["variants"][1]["estimated"] is True


def test_show_of_an_unknown_id_exits_1_in_one_line(journal: tuple[Path, list[str]]) -> None:
    path, _ = journal
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from plan2flow.cli import main; main()",
            "escalations",
            "show",
            "nope",
        ],
        capture_output=True,
        text=True,
        env={"PLAN2FLOW_HOME": str(path.parent.parent), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == f"plan2flow: no escalation record(s) with id 'nope' in {path}\n"


def test_a_damaged_journal_exits_2_naming_the_line(journal: tuple[Path, list[str]]) -> None:
    path, _ = journal
    with path.open("a") as stream:
        stream.write("{not a record}\n")
    result = runner.invoke(app, ["escalations", "list"])
    assert result.exit_code != 0 and result.exception is not None
    from plan2flow.cli import part_error

    assert part_error(result.exception) == 2  # type: ignore[arg-type]
    assert f"{path}:4: not an escalation record" in str(result.exception)


def test_stats_per_tier_and_model(journal: tuple[Path, list[str]]) -> None:
    data = json.loads(runner.invoke(app, ["escalations", "stats", "-f", "json"]).stdout)
    assert data == [
        {"tier": "local", "model": "templates", "variants": 2, "wins": 0, "win_rate": 0.0,
         "mean_score": 0.0, "mean_cost_usd": 0.0, "estimated": 0},
        {"tier": "remote", "model": "big", "variants": 2, "wins": 2, "win_rate": 1.0,
         "mean_score": 0.85, "mean_cost_usd": 0.02, "estimated": 0},
        {"tier": "remote", "model": "tiny", "variants": 1, "wins": 0, "win_rate": 0.0,
         "mean_score": 0.4, "mean_cost_usd": 0.002, "estimated": 1},
    ]  # fmt: skip
    text = runner.invoke(app, ["escalations", "stats"]).stdout.splitlines()
    assert text[0].split()[:4] == ["tier", "model", "variants", "wins"]
    assert text[2].split() == ["remote", "big", "2", "2", "100.0%", "0.850", "0.020000"]
