"""`plan2flow audit export|verify|follow`: exit statuses and outputs, in-process (CliRunner) and
as real processes (the entry point's one-line errors, Ctrl-C of the follower)."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from audit_db import Journal, journal
from events_nats import shared, wait_until
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.cli.audit_commands import _atomic_text
from plan2flow.events import RunContext
from plan2flow.events.errors import NatsRequired
from plan2flow.events.jetstream import JetStreamBus, NatsSettings
from plan2flow.memory.audit_chain import ChainEntry, verify_chain
from plan2flow.memory.errors import TenantError

__all__ = ["journal", "shared"]  # the fixtures

runner = CliRunner()
PLAN2FLOW = Path(sys.executable).with_name("plan2flow")


@pytest.fixture
def filled(journal: Journal) -> Journal:
    """The journal with four entries of tenant acme, the default of its command line."""
    journal.append_many(journal.acme, 4)
    return journal


def _env(journal: Journal, **extra: str) -> dict[str, str]:
    return {**journal.environ, **extra}


def _records(text: str, format: str) -> list[ChainEntry]:
    if format == "json":
        found = json.loads(text)
    elif format == "jsonl":
        found = [json.loads(line) for line in text.splitlines()]
    else:
        found = list(csv.DictReader(io.StringIO(text, newline="")))
    return [ChainEntry.from_dict(record) for record in found]


@pytest.mark.parametrize("format", ["json", "jsonl", "csv"])
def test_export_to_a_file_writes_a_chain_that_verifies(
    filled: Journal, tmp_path: Path, format: str
) -> None:
    target = tmp_path / "out" / f"journal.{format}"
    argv = ["audit", "export", "--format", format, "--output", str(target)]
    result = runner.invoke(app, argv, env=_env(filled))
    assert (result.exit_code, result.exception) == (0, None), result.output
    assert result.stdout == ""
    assert result.stderr == f"exported 4 audit entries of tenant {filled.acme} to {target}\n"
    entries = _records(target.read_text("utf-8"), format)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert verify_chain(entries, filled.acme) is None
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_export_to_stdout_since_a_time_and_of_another_tenant(filled: Journal) -> None:
    result = runner.invoke(app, ["audit", "export", "--since", "1h"], env=_env(filled))
    assert (result.exit_code, result.exception) == (0, None), result.output
    assert [e.seq for e in _records(result.stdout, "jsonl")] == [1, 2, 3, 4]
    future = ["audit", "export", "--since", "2999-01-01T00:00:00Z"]
    result = runner.invoke(app, future, env=_env(filled))
    assert (result.exit_code, result.stdout) == (0, "")
    other = ["audit", "export", "-f", "json", "-t", filled.globex]
    result = runner.invoke(app, other, env=_env(filled))
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


def test_a_bad_since_is_a_usage_error(filled: Journal) -> None:
    result = runner.invoke(app, ["audit", "export", "--since", "yesterday"], env=_env(filled))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("plan2flow: --since 'yesterday': not a time")


def test_a_failed_export_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "journal.jsonl"
    target.write_text("before\n")
    with pytest.raises(RuntimeError), _atomic_text(target) as stream:
        stream.write("half of it")
        raise RuntimeError("the database went away")
    assert target.read_text() == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.jsonl"]


def test_verify_counts_an_intact_journal(filled: Journal) -> None:
    result = runner.invoke(app, ["audit", "verify"], env=_env(filled))
    assert (result.exit_code, result.exception) == (0, None), result.output
    head = filled.rows(filled.acme)[-1].hash
    assert result.stdout == f"tenant {filled.acme}: 4 audit entries intact; head seq 4 {head}\n"
    empty = runner.invoke(app, ["audit", "verify", "--tenant", filled.globex], env=_env(filled))
    assert (empty.exit_code, empty.exception) == (0, None)
    assert empty.stdout.startswith(f"tenant {filled.globex}: 0 audit entries intact; head seq 0")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE audit_entries SET actor = 'x' WHERE tenant = :t AND seq = 2",
            "entry 2 was edited",
        ),
        ("DELETE FROM audit_entries WHERE tenant = :t AND seq = 3", "entry 3 removed"),
    ],
)
def test_verify_exits_1_naming_the_first_bad_entry(
    filled: Journal, sql: str, expected: str
) -> None:
    assert filled.raw(sql, t=filled.acme) == 1
    result = runner.invoke(app, ["audit", "verify"], env=_env(filled))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"plan2flow: the audit journal of tenant '{filled.acme}' is broken: {expected}"
    )
    assert len(result.stderr.splitlines()) == 1


def test_an_unknown_tenant_is_a_tenant_error(filled: Journal) -> None:
    result = runner.invoke(app, ["audit", "verify", "--tenant", "nobody"], env=_env(filled))
    assert isinstance(result.exception, TenantError)
    assert "plan2flow tenants create nobody" in str(result.exception)
    result = runner.invoke(app, ["audit", "export", "--tenant", "Not_A_Label"], env=_env(filled))
    assert isinstance(result.exception, TenantError)


def test_follow_needs_nats(filled: Journal) -> None:
    result = runner.invoke(app, ["audit", "follow"], env=_env(filled, PLAN2FLOW_EVENTS_URL=""))
    assert isinstance(result.exception, NatsRequired)


@pytest.mark.slow
def test_the_entry_point_ends_errors_in_one_line_with_their_status(filled: Journal) -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PLAN2FLOW), "audit", *argv],
            env=_env(filled, PATH="/usr/bin:/bin"),
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run("verify", "--tenant", "nobody")
    assert done.returncode == 2
    assert done.stderr.startswith("plan2flow: no tenant 'nobody'")
    assert len(done.stderr.splitlines()) == 1
    done = run("follow")
    assert done.returncode == 2
    assert done.stderr == (
        "plan2flow: audit follow needs the NATS bus: set PLAN2FLOW_EVENTS_URL (nats://host:4222)\n"
    )
    filled.raw(
        "UPDATE audit_entries SET subject = 'x' WHERE tenant = :t AND seq = 4", t=filled.acme
    )
    done = run("verify")
    assert (done.returncode, done.stdout) == (1, "")
    assert "entry 4 was edited" in done.stderr


def _nats_env(settings: NatsSettings) -> dict[str, str]:
    return {
        "PLAN2FLOW_EVENTS_URL": ",".join(settings.servers),
        "PLAN2FLOW_EVENTS_ROOT": settings.root,
        "PLAN2FLOW_EVENTS_STREAM": settings.stream,
        "PLAN2FLOW_EVENTS_DLQ_STREAM": settings.dlq_stream,
        "PLAN2FLOW_EVENTS_ADVISORY_STREAM": settings.advisory_stream,
    }


@pytest.mark.slow
def test_follow_records_events_until_ctrl_c(filled: Journal, shared: NatsSettings) -> None:
    """Started as a script's background job is (SIGINT ignored), it still stops on Ctrl-C."""
    acme = filled.acme
    context = RunContext(tenant=acme, plan="etl", graphhash=None, flowrunid="r1")
    bus = JetStreamBus(shared)
    try:
        bus.publish(context.flow("started", tasks=1))
        bus.publish(context.task("started", "load"))
    finally:
        bus.close()
    env = _env(filled, PATH="/usr/bin:/bin", PLAN2FLOW_ACTOR="follower", **_nats_env(shared))
    child = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" "$@"', str(PLAN2FLOW), "audit", "follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(filled.rows(acme)) == 6, 120, "two entries followed")
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert lines[0].startswith(f"following the events of tenant {acme} into its audit journal")
    assert lines[-1] == "followed 2 events (0 failed, 0 dead-lettered)"
    assert [(e.action, e.actor) for e in filled.rows(acme)[4:]] == [
        ("run.started", "follower"),
        ("task.started", "follower"),
    ]
