"""`plan2flow deploy`, `up`, `runs` and `trigger` where no server is involved: checks that stop a
deploy before anything happens, the prefect.yaml writer, schedules, and the local-server state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import free_port, plan_text
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import compile_plan
from plan2flow.server import local as server
from plan2flow.server.deployments import (
    Target,
    describe_schedule,
    differences,
    prefect_schedules,
    preflight,
    source_directory,
    write_source,
)
from plan2flow.server.prefect_yaml import HEADER, merge_deployments

SCHEDULED = plan_text(
    "nightly",
    "  - {id: a, type: noop}\n",
    "params:\n  day: {type: string}\n  n: {type: integer, default: 2}\n"
    'schedule: {cron: "0 3 * * *", timezone: Europe/Berlin}\n',
)
PLAIN = plan_text("plain", "  - {id: a, type: noop}\n")


@pytest.fixture
def isolated(tmp_path: Path, restore_environment: None) -> Iterator[dict[str, str | None]]:
    """No server anywhere: an empty home and no PREFECT_API_URL."""
    yield {"PLAN2FLOW_HOME": str(tmp_path / "home"), "PREFECT_API_URL": None}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def invoke(env: dict[str, str | None], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def target(text: str, **changes: Any) -> Target:
    result = compile_plan(text, "plan.yaml")
    values = {
        "source": "plan.yaml",
        "graph": result.graph,
        "flow_source": result.flow_source,
        "name": result.graph.name,
        "pool": "plan2flow",
        "parameters": {},
    }
    values.update(changes)
    return Target(**values)


def test_deploy_refuses_invalid_plans_before_touching_a_server(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    bad = write(tmp_path, "bad.yaml", plan_text("bad", "  - {id: a, type: nope}\n"))
    good = write(tmp_path, "good.yaml", PLAIN)
    result = invoke(isolated, "deploy", str(good), str(bad))
    assert result.exit_code == 1
    assert "P2F106" in result.output
    assert not (tmp_path / "home" / "deployments").exists()


def test_deploy_needs_a_server(tmp_path: Path, isolated: dict[str, str | None]) -> None:
    result = invoke(isolated, "deploy", str(write(tmp_path, "plain.yaml", PLAIN)))
    assert result.exit_code == 2
    assert "no Prefect server: start one with `plan2flow up`" in result.output
    for command in (["runs"], ["trigger", "plain"]):
        other = invoke(isolated, *command)
        assert other.exit_code == 2, other.output
        assert "no Prefect server" in other.output


def test_a_scheduled_plan_needs_values_for_its_required_params(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    plan = write(tmp_path, "nightly.yaml", SCHEDULED)
    result = invoke(isolated, "deploy", str(plan))
    assert result.exit_code == 1
    assert "parameter(s) day have no default: give the deployment a value" in result.output
    assert "nothing was deployed" in result.output


def test_params_are_checked_against_every_plan(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    nightly = write(tmp_path, "nightly.yaml", SCHEDULED)
    plain = write(tmp_path, "plain.yaml", PLAIN)
    unknown = invoke(isolated, "deploy", str(nightly), str(plain), "-p", "day=x", "-p", "dya=1")
    assert unknown.exit_code == 1
    assert "--param 'dya=1': no plan has this parameter" in unknown.output
    typed = invoke(isolated, "deploy", str(nightly), "-p", "day=x", "-p", "n=two")
    assert typed.exit_code == 1
    assert "--param n='two': not a valid integer" in typed.output


def test_a_bad_timezone_is_caught_before_deploying(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    text = SCHEDULED.replace("Europe/Berlin", "Mars/Olympus")
    result = invoke(isolated, "deploy", str(write(tmp_path, "n.yaml", text)), "-p", "day=x")
    assert result.exit_code == 1
    assert "schedule cron '0 3 * * *' (Mars/Olympus):" in result.output


def test_prefect_yaml_is_written_with_the_flows_beside_it(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    plan = write(tmp_path, "nightly.yaml", SCHEDULED)
    out = tmp_path / "project" / "prefect.yaml"
    result = invoke(
        isolated, "deploy", str(plan), "-p", "day=2026-01-01", "--prefect-yaml", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "prefect --no-prompt deploy --all" in result.output
    text = out.read_text()
    assert text.startswith(HEADER)
    document = yaml.safe_load(text)
    [entry] = document["deployments"]
    compiled = compile_plan(SCHEDULED, "nightly.yaml")
    graph = compiled.graph
    assert entry == {
        "name": "nightly",
        "version": graph.hash,
        "tags": ["plan2flow"],
        "description": None,
        "entrypoint": "nightly_flow.py:nightly",
        "parameters": {"day": "2026-01-01"},
        "work_pool": {"name": "plan2flow", "work_queue_name": None, "job_variables": {}},
        "schedules": [{"cron": "0 3 * * *", "timezone": "Europe/Berlin", "active": True}],
    }
    assert (out.parent / "nightly_flow.py").read_text() == compiled.flow_source
    assert (out.parent / "nightly.taskgraph.json").read_text() == graph.text
    again = invoke(
        isolated, "deploy", str(plan), "-p", "day=2026-01-01", "--prefect-yaml", str(out)
    )
    assert again.exit_code == 0
    assert out.read_text() == text  # idempotent


def test_prefect_yaml_merge_keeps_what_it_does_not_own() -> None:
    existing = (
        "name: team\npull:\n- prefect.deployments.steps.git_clone: {repository: x}\n"
        "deployments:\n- {name: other, entrypoint: other.py:main}\n"
        "- {name: plain, entrypoint: plain_flow.py:plain, version: old}\n"
    )
    merged = yaml.safe_load(merge_deployments(existing, [target(PLAIN)]))
    assert merged["name"] == "team"
    assert merged["pull"] == [{"prefect.deployments.steps.git_clone": {"repository": "x"}}]
    assert [d["name"] for d in merged["deployments"]] == ["other", "plain"]
    assert merged["deployments"][1]["version"].startswith("sha256:")
    assert merged["deployments"][1]["schedules"] == []
    interval = target(PLAIN.replace("tasks:", "schedule: {interval_seconds: 90}\ntasks:"))
    [entry] = yaml.safe_load(merge_deployments(None, [interval]))["deployments"]
    assert entry["schedules"] == [
        {"interval": 90.0, "anchor_date": "2000-01-01T00:00:00", "timezone": "UTC", "active": True}
    ]
    with pytest.raises(ValueError, match="expected a mapping"):
        merge_deployments("- a\n", [])
    with pytest.raises(ValueError, match="not a list"):
        merge_deployments("deployments: {}\n", [])


def test_an_unreadable_prefect_yaml_is_a_usage_error(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    out = write(tmp_path, "prefect.yaml", "just a string\n")
    plan = write(tmp_path, "plain.yaml", PLAIN)
    result = invoke(isolated, "deploy", str(plan), "--prefect-yaml", str(out))
    assert result.exit_code == 2
    assert "not a prefect.yaml" in result.output
    assert not (tmp_path / "plain_flow.py").exists()


@pytest.mark.parametrize(
    ("schedule", "kind", "shown"),
    [
        ({"cron": "@daily", "timezone": "UTC"}, "CronSchedule", "cron '@daily' (UTC)"),
        ({"interval_seconds": 60.0, "timezone": "UTC"}, "IntervalSchedule", "every 60 s (UTC)"),
        (
            {"rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Berlin"},
            "RRuleSchedule",
            "rrule 'FREQ=WEEKLY;BYDAY=MO' (Europe/Berlin)",
        ),
    ],
)
def test_plan_schedules_become_prefect_schedules(
    schedule: dict[str, Any], kind: str, shown: str
) -> None:
    [converted] = prefect_schedules(schedule)
    assert type(converted).__name__ == kind
    assert converted.timezone == schedule["timezone"]
    assert describe_schedule(schedule) == shown
    assert prefect_schedules(None) == []
    assert describe_schedule(None) == "none"


def test_a_bad_rrule_is_a_preflight_problem() -> None:
    bad = target(PLAIN.replace("tasks:", "schedule: {rrule: 'FREQ=DAILY;BYHOUR=99'}\ntasks:"))
    [problem] = preflight(bad)
    assert problem.startswith("schedule rrule 'FREQ=DAILY;BYHOUR=99' (UTC):")


def test_differences_name_each_changed_field() -> None:
    current = {"version": "a", "schedule": ["cron=1"], "parameters": {}}
    desired = {"version": "b", "schedule": [], "parameters": {"x": 1}}
    assert differences(current, desired) == [
        "version: 'a' → 'b'",
        "schedule: cron=1 → none",
        "parameters: none → x=1",
    ]
    assert differences(desired, desired) == []


def test_deployment_sources_are_content_addressed(tmp_path: Path) -> None:
    first = target(PLAIN)
    directory = write_source(first, tmp_path)
    assert directory == source_directory(first.graph, tmp_path)
    assert directory.name == first.graph.hash.removeprefix("sha256:")[:16]
    assert sorted(p.name for p in directory.iterdir()) == [
        "plain.taskgraph.json",
        "plain_flow.py",
    ]
    changed = target(PLAIN.replace("type: noop", "type: noop, retries: 2"))
    assert write_source(changed, tmp_path) != directory


def test_up_reports_a_busy_port_and_starts_nothing(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke(isolated, "up", "--port", str(port))
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.output
    assert not (tmp_path / "home" / "server.json").exists()


@pytest.mark.slow
def test_up_reports_a_server_that_dies_at_start(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    broken = {**isolated, "PREFECT_API_DATABASE_CONNECTION_URL": None}
    result = invoke(
        broken,
        "up",
        "--port",
        str(free_port()),
        "--database-url",
        "postgresql+asyncpg://nobody@127.0.0.1:1/none",
        "--timeout",
        "60",
    )
    assert result.exit_code == 2
    assert "the Prefect server exited at start; its log ends:" in result.output
    assert not (tmp_path / "home" / "server.json").exists()


def test_down_without_a_server(isolated: dict[str, str | None]) -> None:
    result = invoke(isolated, "down")
    assert result.exit_code == 0
    assert "no plan2flow server is running" in result.output


def test_state_of_a_dead_server_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    state = server.LocalServer(
        api_url="http://127.0.0.1:1/api",
        ui_url="http://127.0.0.1:1",
        pool="p",
        server_pid=int(dead.stdout),
        worker_pid=None,
        database="x",
        logs=(),
    )
    (tmp_path / "server.json").write_text(state.to_json())
    assert server.LocalServer.from_json(state.to_json()) == state
    assert server.running(tmp_path) is None
    assert server.stop(tmp_path) is False
    assert not (tmp_path / "server.json").exists()
    (tmp_path / "server.json").write_text("{not json")
    assert server.running(tmp_path) is None


def test_a_process_that_is_not_prefect_is_never_signalled() -> None:
    """A recorded pid may have been reused by another program: `down` must not kill it."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert server._stop_pid(other.pid, grace=1) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_foreground_loop_notices_a_dead_process(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    ready: list[bool] = []
    assert server.wait_until_interrupted([child.pid], lambda: ready.append(True), tmp_path) == 1
    assert ready == [True]


def test_database_passwords_are_never_printed() -> None:
    assert server.redact("postgresql+asyncpg://u:secret@db/prefect") == (
        "postgresql+asyncpg://u:***@db/prefect"
    )
    assert server.redact("postgresql+asyncpg://u@db/prefect") == "postgresql+asyncpg://u@db/prefect"


def test_commands_find_the_local_server_through_its_state(
    tmp_path: Path, restore_environment: None
) -> None:
    """With no PREFECT_API_URL, `prefect_environment` points at the server `up` recorded."""
    from plan2flow.server.launch import prefect_environment

    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PLAN2FLOW_HOME"] = str(tmp_path)
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "prefect-server-stand-in"]
    )
    try:
        state = json.loads(
            server.LocalServer(
                api_url="http://127.0.0.1:9/api",
                ui_url="http://127.0.0.1:9",
                pool="p",
                server_pid=sleeper.pid,
                worker_pid=None,
                database="x",
                logs=(),
            ).to_json()
        )
        (tmp_path / "server.json").write_text(json.dumps(state))
        cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"stand-in" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)  # the interpreter is still starting
        assert server.running() is not None
        prefect_environment()
        assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"
        assert "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE" not in os.environ
        unreachable = CliRunner().invoke(app, ["runs"])
        assert unreachable.exit_code == 2
        assert "cannot reach the Prefect server at http://127.0.0.1:9/api" in unreachable.output
    finally:
        sleeper.kill()
        sleeper.wait()


ROOT = Path(__file__).parents[1]


def test_the_prefect_yaml_example_is_what_the_command_writes(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    """deploy/prefect.yaml: its entries are exactly those of `deploy --prefect-yaml -o build`."""
    out = tmp_path / "prefect.yaml"
    plans = [ROOT / "examples" / "plans" / n for n in ("hello.yaml", "data-pipeline.yaml")]
    result = invoke(
        isolated,
        "deploy",
        *map(str, plans),
        "--param",
        "day=2026-01-01",
        "--prefect-yaml",
        str(out),
        "--output-dir",
        str(tmp_path / "build"),
    )
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    example = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    assert example["deployments"] == written["deployments"]
    assert [d["entrypoint"] for d in written["deployments"]] == [
        "build/hello_flow.py:hello",
        "build/nightly_sales_flow.py:nightly_sales",
    ]
    assert (tmp_path / "build" / "nightly_sales_flow.py").exists()
    assert "git_clone" in str(example["pull"])


def test_the_work_pool_settings_are_those_up_creates() -> None:
    from prefect.workers.process import ProcessWorker

    settings = json.loads((ROOT / "deploy" / "work-pools" / "plan2flow-process.json").read_text())
    assert settings["type"] == ProcessWorker.type == "process"
    assert settings["name"] == server.DEFAULT_POOL
    assert settings["base_job_template"] == ProcessWorker.get_default_base_job_template()


def test_runs_and_trigger_report_an_invalid_plan_file(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    bad = write(tmp_path, "bad.yaml", plan_text("bad", "  - {id: a, type: nope}\n"))
    for command in ("runs", "trigger"):
        result = invoke(isolated, command, str(bad))
        assert result.exit_code == 1, result.output
        assert "P2F106" in result.output


@pytest.mark.slow
def test_deploy_to_an_unreachable_server_is_a_clear_error(
    tmp_path: Path, isolated: dict[str, str | None]
) -> None:
    env = {**isolated, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    result = invoke(env, "deploy", str(write(tmp_path, "plain.yaml", PLAIN)))
    assert result.exit_code == 2, result.output
    assert "plan2flow: the Prefect server at http://127.0.0.1:" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    trigger = invoke(env, "trigger", "plain", "-p", "x")
    assert trigger.exit_code == 2
    assert "--param 'x': expected NAME=VALUE" in trigger.output


def test_output_dir_goes_with_prefect_yaml(tmp_path: Path, isolated: dict[str, str | None]) -> None:
    plan = write(tmp_path, "plain.yaml", PLAIN)
    result = invoke(isolated, "deploy", str(plan), "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "--output-dir goes with --prefect-yaml" in result.output
    assert not (tmp_path / "out").exists()
