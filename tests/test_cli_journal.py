"""The command line journals what it does itself (compile) in the audit journal, and a journal
that cannot be written is a warning, never a lost output."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.memory.audit import entries, verify
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.settings import memory_settings

EXAMPLE = Path(__file__).parents[1] / "examples" / "plans" / "hello.yaml"


def test_compile_appends_one_entry_per_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["compile", str(EXAMPLE), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0 and result.exception is None, result.output
    settings = memory_settings()
    with configured_database(settings) as database, database.session("default") as session:
        [entry] = [e for e in entries(session, "default") if e.action == "compile"]
        assert verify(session, "default").count >= 1
    assert entry.subject == "hello"
    assert entry.detail["output"] == str(tmp_path / "out" / "hello.taskgraph.json")
    assert entry.detail["hash"].startswith("sha256:")


def test_an_unwritable_journal_warns_and_keeps_the_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLAN2FLOW_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["compile", str(EXAMPLE), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "warning: the audit journal was not written" in result.output
    assert (tmp_path / "out" / "hello.taskgraph.json").is_file()
