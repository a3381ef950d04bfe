"""`plan2flow escalations list|show|stats` on records in project memory (SQLite and PostgreSQL
as the application role), filtered by tenant, plan and run, and their exit statuses; each record
is written with its audit entry in one transaction."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from memory_pg import MemoryPostgres, create_tenants, unique_tenant
from typer.testing import CliRunner

from plan2flow.cli import app, part_error
from plan2flow.escalation import JournalError, RecordNotFound, find, records, store
from plan2flow.escalation.chain import ChainResult
from plan2flow.escalation.journal import make_record
from plan2flow.escalation.signals import Measured
from plan2flow.escalation.variants import Variant
from plan2flow.memory import audit
from plan2flow.memory.db.engine import Database, configured_database, open_database
from plan2flow.memory.db.models import AuditEntry, EscalationRow
from plan2flow.memory.settings import memory_settings
from plan2flow.memory.tenants import create_tenant

runner = CliRunner()
START = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


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


@dataclass
class Memory:
    """Project memory of one test: its database, and tenants A and B."""

    database: Database
    a: str
    b: str
    ids: list[str]

    def record(self, tenant: str, plan: str, run: str, outcome: str, *variants: Variant) -> str:
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
        now = START + dt.timedelta(minutes=len(self.ids))
        record = make_record(result, tenant=tenant, plan=plan, flow_run_id=run, now=now)
        store(self.database, record, who="tester")
        self.ids.append(record.id)
        return record.id


def _seed(memory: Memory) -> Memory:
    local = variant("0-local-1", "local", None, 0.0, 0.0)
    big = variant("1-remote-1", "remote", "big", 0.9, 0.01)
    tiny = variant("1-remote-1", "remote", "tiny", 0.4, 0.002)
    other = variant("1-remote-1", "remote", "big", 0.8, 0.03)
    memory.record(memory.a, "shop", "r1", "kept", local, big)
    memory.record(memory.a, "shop", "r2", "failed", local, tiny)
    memory.record(memory.a, "blog", "r3", "kept", other)
    memory.record(memory.b, "shop", "r1", "kept", other)
    return memory


@pytest.fixture(params=["sqlite", "postgresql"])
def memory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Memory]:
    """Records of tenants A (three) and B (one) on either database; the CLI's environment
    points at it, as the application role on PostgreSQL."""
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    if request.param == "sqlite":
        a, b = "default", "other"
        create_tenant(b, memory_settings())
        database = configured_database()
    else:
        pg: MemoryPostgres = request.getfixturevalue("memory_postgres")
        a, b = unique_tenant("a"), unique_tenant("b")
        create_tenants(pg, a, b)
        for name, value in pg.environ(tmp_path / "home").items():
            monkeypatch.setenv(name, value)
        database = open_database(pg.app_url())
    monkeypatch.setenv("PLAN2FLOW_TENANT", a)
    with database:
        yield _seed(Memory(database, a, b, []))


def test_list_filters_by_tenant_plan_and_run(memory: Memory) -> None:
    result = runner.invoke(app, ["escalations", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [i[:12] for i in memory.ids[:3]]
    assert "kept at remote  winner 1-remote-1 0.900" in lines[0]
    assert "failed at human  winner -" in lines[1]
    shop = runner.invoke(
        app, ["escalations", "list", "--plan", "shop", "--run", "r2", "-f", "json"]
    )
    (only,) = json.loads(shop.stdout)
    assert (only["id"], only["outcome"], only["redactions"]) == (
        memory.ids[1],
        "failed",
        {"EMAIL": 2},
    )
    other = runner.invoke(app, ["escalations", "list", "--tenant", memory.b, "-f", "json"])
    assert [r["id"] for r in json.loads(other.stdout)] == [memory.ids[3]]
    assert [r.id for r in records(memory.database, memory.a, plan="shop", run="r1")] == [
        memory.ids[0]
    ]


def test_show_by_prefix_with_every_variant(memory: Memory) -> None:
    ids = memory.ids
    result = runner.invoke(app, ["escalations", "show", ids[0][:6]])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"escalation {ids[0][:12]}" in text and "outcome     kept at the remote tier" in text
    assert "redactions  EMAIL 2" in text and "1/2 tests" in text
    assert "tests 0.500, parses 1.000" in text
    data = json.loads(runner.invoke(app, ["escalations", "show", ids[1], "-f", "json"]).stdout)
    assert [v["model"] for v in data["variants"]] == [None, "tiny"]
    assert data["variants"][1]["estimated"] is True and data["estimated"] is True


def test_another_tenants_record_is_not_found(memory: Memory) -> None:
    theirs = memory.ids[3]
    result = runner.invoke(app, ["escalations", "show", theirs])
    assert result.exit_code != 0 and isinstance(result.exception, RecordNotFound)
    assert part_error(result.exception) == 1
    with pytest.raises(RecordNotFound, match="no escalation record"):
        find(memory.database, memory.a, theirs[:8])
    assert find(memory.database, memory.b, theirs[:8]).tenant == memory.b
    with pytest.raises(RecordNotFound):
        find(memory.database, memory.a, "not-hex")


def test_each_record_has_its_audit_entry(memory: Memory) -> None:
    with memory.database.session(memory.a) as session:
        entries = [e for e in audit.entries(session, memory.a) if e.action == "escalation.recorded"]
        audit.verify(session, memory.a)
    assert [e.detail["record_id"] for e in entries] == memory.ids[:3]
    assert {(e.actor, e.subject) for e in entries} == {("tester", "greeter.generate_code")}
    assert entries[0].detail["redactions"] == {"EMAIL": 2}


def test_a_record_and_its_audit_entry_are_written_together_or_not_at_all(
    memory: Memory,
) -> None:
    """A record whose id is taken fails on the primary key: its audit entry is rolled back."""
    (first,) = [r for r in records(memory.database, memory.a, run="r3")]
    with pytest.raises(JournalError, match=r"(?i)cannot record escalation .*(unique|duplicate)"):
        store(memory.database, first)
    with memory.database.session(memory.a) as session:
        actions = [e.action for e in audit.entries(session, memory.a)]
    assert actions.count("escalation.recorded") == 3


@pytest.mark.slow
def test_stats_per_tier_and_model(memory: Memory) -> None:
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
    blog = json.loads(
        runner.invoke(app, ["escalations", "stats", "--plan", "blog", "-f", "json"]).stdout
    )
    assert [(r["model"], r["variants"]) for r in blog] == [("big", 1)]


def test_list_of_nothing_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path))
    result = runner.invoke(app, ["escalations", "list"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no escalations\n")


@pytest.mark.slow
def test_show_of_an_unknown_id_exits_1_in_one_line(tmp_path: Path) -> None:
    def plan2flow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from plan2flow.cli import main; main()", *args],
            capture_output=True,
            text=True,
            env={"PLAN2FLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            check=False,
        )

    done = plan2flow("escalations", "show", "abc123")
    assert done.returncode == 1
    assert done.stderr == (
        "plan2flow: no escalation record of tenant 'default' has an id starting 'abc123'\n"
    )
    unknown = plan2flow("escalations", "list", "--tenant", "nobody")
    assert unknown.returncode == 2 and "plan2flow tenants create nobody" in unknown.stderr


def test_a_damaged_record_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path))
    row_id = uuid.uuid4()
    with configured_database() as database, database.session("default") as session:
        session.add(
            EscalationRow(
                id=row_id, outcome="kept", tier_reached="remote", threshold=0.8,
                variants=[{"label": "not a variant record"}],
            )
        )  # fmt: skip
        assert session.get(AuditEntry, row_id) is None
    result = runner.invoke(app, ["escalations", "list"])
    assert isinstance(result.exception, JournalError)
    assert part_error(result.exception) == 2
    assert f"escalation {row_id.hex[:12]} is not a record" in str(result.exception)
