"""`plan2flow db` and `plan2flow tenants` through the command line: what they print, and the
errors of project memory ending the command with their own status through ``main()``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memory_pg import MemoryPostgres, unique_tenant
from typer.testing import CliRunner

from plan2flow.cli import app, part_error
from plan2flow.memory.db import migrate
from plan2flow.memory.errors import DatabaseUnavailable, SchemaOutOfDate, TenantError

UNREACHABLE = "postgresql://p2f_app:hunter2-secret@127.0.0.1:1/plan2flow"


def cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def ok(env: dict[str, str], *args: str) -> str:
    result = cli(env, *args)
    assert result.exception is None, result.exception
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def test_db_and_tenants_on_the_sqlite_default(tmp_path: Path) -> None:
    env = {"PLAN2FLOW_HOME": str(tmp_path / "home")}
    assert ok(env, "db", "current").startswith("base (not migrated")
    assert "upgraded from base to 0005_tenant_hosts" in ok(env, "db", "upgrade")
    assert "is at 0005_tenant_hosts already" in ok(env, "db", "upgrade")
    assert ok(env, "db", "current") == "0005_tenant_hosts (head)\n"
    history = ok(env, "db", "history").splitlines()
    assert [line.split()[0] for line in history] == [
        "0001_tables",
        "0002_tenant_isolation",
        "0003_escalations",
        "0004_costs_budgets",
        "0005_tenant_hosts",
    ]
    assert "(head)" in history[4]

    assert ok(env, "tenants", "create", "acme") == "created tenant acme\n"
    listed = ok(env, "tenants", "list").splitlines()
    assert [line.split()[0] for line in listed] == ["acme", "default"]
    rows = json.loads(ok(env, "tenants", "list", "--format", "json"))
    assert [row["name"] for row in rows] == ["acme", "default"]
    assert all(row["created"].endswith("+00:00") for row in rows)

    downgraded = ok(env, "db", "downgrade", "base")
    assert "downgraded from 0005_tenant_hosts to base" in downgraded
    assert ok(env, "db", "current").startswith("base")


def test_tenant_errors_end_with_the_parts_status(tmp_path: Path) -> None:
    env = {"PLAN2FLOW_HOME": str(tmp_path / "home")}
    ok(env, "tenants", "create", "acme")
    for args, message in (
        (("tenants", "create", "acme"), "exists already"),
        (("tenants", "create", "Acme_Corp"), "not a DNS label"),
    ):
        result = cli(env, *args)
        assert isinstance(result.exception, TenantError)
        assert message in str(result.exception)
        assert part_error(result.exception) == 2


def test_an_unreachable_database_ends_with_status_3_and_no_password(tmp_path: Path) -> None:
    env = {"PLAN2FLOW_HOME": str(tmp_path / "home"), "PLAN2FLOW_DATABASE_URL": UNREACHABLE}
    for args in (("tenants", "list"), ("db", "upgrade"), ("db", "current")):
        result = cli(env, *args)
        assert isinstance(result.exception, DatabaseUnavailable), args
        assert part_error(result.exception) == 3
        assert "hunter2-secret" not in str(result.exception)
        assert "p2f_app:***@127.0.0.1:1" in str(result.exception)


@pytest.mark.slow
def test_main_prints_one_line_and_exits_with_the_status(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PLAN2FLOW_HOME": str(tmp_path / "home"),
        "PLAN2FLOW_DATABASE_URL": UNREACHABLE,
    }
    done = subprocess.run(
        [sys.executable, "-c", "from plan2flow.cli import main; main()", "tenants", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 3
    assert done.stderr.startswith("plan2flow: cannot use the metadata database")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "hunter2-secret" not in done.stderr + done.stdout


def test_db_and_tenants_on_postgresql(memory_postgres: MemoryPostgres, tmp_path: Path) -> None:
    """The migration role migrates and creates; the application role lists."""
    env = memory_postgres.environ(tmp_path)
    assert "already" in ok(env, "db", "upgrade")
    assert ok(env, "db", "current") == f"{migrate.head()} (head)\n"
    name = unique_tenant("cli")
    assert ok(env, "tenants", "create", name) == f"created tenant {name}\n"
    rows = json.loads(ok(env, "tenants", "list", "-f", "json"))
    assert name in [row["name"] for row in rows]
    result = cli(env, "tenants", "create", name)
    assert isinstance(result.exception, TenantError)


@pytest.mark.slow
def test_a_postgresql_database_behind_ends_with_status_4(
    memory_postgres: MemoryPostgres, tmp_path: Path
) -> None:
    database = memory_postgres.create_database("_cli")
    try:
        env = memory_postgres.environ(tmp_path, database)
        for args in (("tenants", "list"), ("tenants", "create", "acme")):
            result = cli(env, *args)
            assert isinstance(result.exception, SchemaOutOfDate), args
            assert part_error(result.exception) == 4
            assert "plan2flow db upgrade" in str(result.exception)
        assert "upgraded from base to" in ok(env, "db", "upgrade")
        ok(env, "tenants", "create", "acme")
        assert [row["name"] for row in json.loads(ok(env, "tenants", "list", "-f", "json"))] == [
            "acme"
        ]
        assert "downgraded from" in ok(env, "db", "downgrade", "0001_tables")
        assert "behind" in ok(env, "db", "current")
        result = cli(env, "tenants", "list")
        assert isinstance(result.exception, SchemaOutOfDate)
    finally:
        memory_postgres.drop_database(database)
