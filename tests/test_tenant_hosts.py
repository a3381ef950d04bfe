"""Per-tenant outbound host allow-lists: `plan2flow tenants hosts` keeps them in project memory
(SQLite, and PostgreSQL through the migration role, read-only for the application role) and
journals every change; the escalation chain calls a remote tier's host only when both the plan
and, once it has a list, the tenant allow it. Against a real loopback server that counts the
requests it gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from memory_pg import MemoryPostgres, create_tenants, unique_tenant
from openai_server import Reply, bodies, fake_openai
from psycopg import errors as pg_errors
from sqlmodel import col
from typer.testing import CliRunner

from plan2flow.agents import AgentRequest, CodeGeneratorAgent, Outcome
from plan2flow.cli import app, part_error
from plan2flow.compiler.spec.escalation import (
    EscalationPolicy,
    LocalTier,
    Redaction,
    RemoteTier,
    Tier,
    Weights,
    policy_record,
)
from plan2flow.escalation import Gateway, HostDenied, records
from plan2flow.memory import audit
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.db.models import Tenant
from plan2flow.memory.tenant_hosts import TenantHosts, normalize_host, tenant_hosts

RIGHT = bodies({"greet": "return f'Hello, {name}!'"})
SPEC: dict[str, Any] = {
    "module": "greeter",
    "functions": [
        {
            "name": "greet",
            "signature": "(name: str) -> str",
            "examples": [
                {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
                {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
            ],
        }
    ],
}


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exception is None, result.exception
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def refused(*args: str) -> str:
    """The message of a command that must fail on the user's input, with main()'s status 2."""
    result = cli(*args)
    assert result.exception is not None and part_error(result.exception) == 2, result.output
    return str(result.exception)


@pytest.fixture(params=["sqlite", "postgresql"])
def tenant(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A tenant in the home's SQLite database or, with the migration role to manage it and the
    application role to use it, in PostgreSQL."""
    monkeypatch.setenv("P2F_TEST_KEY", "k")
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    if request.param == "sqlite":
        yield "default"
        return
    pg: MemoryPostgres = request.getfixturevalue("memory_postgres")
    name = unique_tenant("hosts")
    create_tenants(pg, name)
    for variable, value in pg.environ(tmp_path / "home").items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PLAN2FLOW_TENANT", name)
    yield name


def journaled(tenant: str) -> list[tuple[str, str, dict[str, Any]]]:
    with configured_database() as database, database.session(tenant) as session:
        return [
            (entry.action, entry.subject, entry.detail)
            for entry in audit.entries(session, tenant)
            if entry.action.startswith("tenant.host")
        ]


@pytest.mark.slow
def test_hosts_are_allowed_denied_listed_cleared_and_journaled(tenant: str) -> None:
    assert "has no host list" in ok("tenants", "hosts", "list", "--tenant", tenant)
    assert json.loads(ok("tenants", "hosts", "list", "-f", "json")) == {
        "tenant": tenant,
        "hosts": None,
    }
    assert "P2F821" in refused("tenants", "hosts", "deny", "api.example.com")

    assert ok("tenants", "hosts", "allow", "API.Example.com") == (
        f"tenant {tenant} allows api.example.com\n"
    )
    assert "allows 127.0.0.1, api.example.com" in ok("tenants", "hosts", "allow", "127.0.0.1")
    assert "allows 127.0.0.1, ::1, api.example.com" in ok("tenants", "hosts", "allow", "[::1]")
    ok("tenants", "hosts", "deny", "api.example.com")
    assert ok("tenants", "hosts", "list") == "127.0.0.1\n::1\n"
    ok("tenants", "hosts", "deny", "127.0.0.1")
    assert "allows nothing (every host is denied)" in ok("tenants", "hosts", "deny", "::1")
    assert "allows no host" in ok("tenants", "hosts", "list")
    assert json.loads(ok("tenants", "hosts", "list", "-f", "json"))["hosts"] == []

    assert "has no host list now" in ok("tenants", "hosts", "clear")
    assert "had no host list" in ok("tenants", "hosts", "clear")
    assert [(action, subject) for action, subject, _ in journaled(tenant)] == [
        ("tenant.host_allowed", "api.example.com"),
        ("tenant.host_allowed", "127.0.0.1"),
        ("tenant.host_allowed", "::1"),
        ("tenant.host_denied", "api.example.com"),
        ("tenant.host_denied", "127.0.0.1"),
        ("tenant.host_denied", "::1"),
        ("tenant.hosts_cleared", ""),
    ]
    assert journaled(tenant)[1][2] == {"hosts": ["127.0.0.1", "api.example.com"]}


@pytest.mark.parametrize(
    "host", ["https://api.example.com", "api.example.com:443", "api.example.com/v1", "", "a b"]
)
def test_a_host_that_is_not_one_is_refused_with_a_code(tmp_path: Path, host: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
        message = refused("tenants", "hosts", "allow", host)
    assert message.startswith("P2F820") and "without scheme, port or path" in message


def test_an_unknown_tenant_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    assert "plan2flow tenants create nobody" in refused(
        "tenants", "hosts", "allow", "--tenant", "nobody", "127.0.0.1"
    )


def test_hosts_compare_as_the_chain_sees_them() -> None:
    assert normalize_host("[0:0::1]") == "::1" and normalize_host("LOCALHOST") == "localhost"
    listed = TenantHosts("t", frozenset({"::1", "api.example.com"}))
    assert listed.allows("[::1]") and listed.allows("API.example.com")
    assert not listed.allows("127.0.0.1")


def test_a_stored_list_that_is_not_one_allows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    with configured_database() as database, database.connect() as connection:
        for stored, allowed in (({"127.0.0.1": True}, set()), (["[::1]", 7], {"::1"})):
            connection.execute(
                sa.update(Tenant).where(col(Tenant.name) == "default").values(allowed_hosts=stored)
            )
            connection.commit()
            found = tenant_hosts(database, "default")
            assert found is not None and found.allowed == allowed


def test_the_gateway_needs_both_the_plan_and_the_tenant() -> None:
    tenant_only = Gateway(Redaction(), [], TenantHosts("acme", frozenset({"127.0.0.1"})))
    with pytest.raises(HostDenied, match="not in the policy's allowed_hosts"):
        tenant_only.check_host("http://127.0.0.1:9/v1")
    plan_only = Gateway(Redaction(), ["127.0.0.1"], TenantHosts("acme", frozenset()))
    with pytest.raises(HostDenied, match="outbound host list of tenant 'acme'"):
        plan_only.check_host("http://127.0.0.1:9/v1")
    both = Gateway(Redaction(), ["127.0.0.1"], TenantHosts("acme", frozenset({"127.0.0.1"})))
    assert both.check_host("http://127.0.0.1:9/v1") == "127.0.0.1"
    assert Gateway(Redaction(), ["127.0.0.1"]).check_host("http://127.0.0.1:9/v1") == "127.0.0.1"


def request(tmp_path: Path, url: str, run: str) -> AgentRequest:
    tiers = [
        Tier(local=LocalTier()),
        Tier(remote=RemoteTier(base_url=url, model="small", api_key_env="P2F_TEST_KEY")),
    ]
    policy = EscalationPolicy(
        threshold=0.8, tiers=tiers, allowed_hosts=["127.0.0.1"], weights=Weights(types=0)
    )
    work = tmp_path / run
    work.mkdir()
    return AgentRequest(
        task_id="greeter.generate_code",
        task_type="generate_code",
        params={"language": "python", "spec": SPEC},
        outputs={"code": str(work / "code")},
        workspace=str(work),
        correlation_id=run,
        escalation=policy_record(policy),
        plan="greetings",
    )


@pytest.mark.slow
def test_a_host_the_tenant_does_not_allow_is_never_contacted(tmp_path: Path, tenant: str) -> None:
    ok("tenants", "hosts", "allow", "api.example.com")  # a list without the server's host
    with fake_openai([Reply(content=RIGHT)]) as server:
        denied = CodeGeneratorAgent().execute(request(tmp_path, server.url, "run-1"))
        assert server.requests == [], "the chain contacted a host the tenant does not allow"

        ok("tenants", "hosts", "allow", "127.0.0.1")
        allowed = CodeGeneratorAgent().execute(request(tmp_path, server.url, "run-2"))
        assert len(server.requests) == 2  # both variants, now that plan and tenant allow it

    assert denied.outcome is Outcome.FAILED
    assert "escalation reached the remote tier" in denied.findings[1]
    assert allowed.outcome is Outcome.SUCCEEDED, allowed.findings
    with configured_database() as database:
        first, second = sorted(records(database, tenant), key=lambda r: r.flow_run_id)
    assert (first.outcome, first.tier_reached, first.variants[-1].tier) == (
        "failed",
        "remote",
        "local",
    )
    assert first.reason == (
        "the best variant, 0-local-1, scores 0.000 < 0.8 (host '127.0.0.1' is not in the outbound "
        f"host list of tenant '{tenant}': see plan2flow tenants hosts list --tenant {tenant}); "
        "no tier is left"
    )
    assert (second.outcome, second.winner) == ("kept", "1-remote-1")


def test_the_application_role_cannot_widen_its_own_list(memory_postgres: MemoryPostgres) -> None:
    name = unique_tenant("hosts")
    create_tenants(memory_postgres, name)
    with (
        psycopg.connect(memory_postgres.dsn(memory_postgres.app)) as connection,
        pytest.raises(pg_errors.InsufficientPrivilege),
    ):
        connection.execute(
            "UPDATE tenants SET allowed_hosts = '[\"evil.example\"]' WHERE name = %s", (name,)
        )
