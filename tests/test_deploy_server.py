"""The Prefect server path end to end, on SQLite and on PostgreSQL: `plan2flow up` starts a real
server and a real process worker; plans are deployed, scheduled, triggered, listed, redeployed,
looked at in the Prefect UI with headless Chromium, and `plan2flow down` stops it all.

Every test deploys plans of its own name, so the tests pass in any order on the shared server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import CHROMIUM, chromium
from plan2flow_up import PLAN, TASK_IDS, Local
from prefect_db import seed
from support import free_port, need_service
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import compile_plan
from plan2flow.memory.audit import entries
from plan2flow.memory.db.engine import configured_database
from plan2flow.memory.settings import memory_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "build" / "test-artifacts"


def graph_hash(path: Path) -> str:
    return compile_plan(path.read_text("utf-8"), path.name).graph.hash


def deployment(local: Local, name: str) -> dict[str, Any]:
    return dict(local.get(f"/deployments/name/{name}/{name}"))


def run_id_of(output: str) -> str:
    return output.split("view it at ")[1].split()[0].rsplit("/", 1)[1]


def test_up_serves_the_api_a_ready_pool_and_the_agent_blocks(local: Local) -> None:
    assert local.get("/health") is True
    pool = local.get("/work_pools/plan2flow-test")
    assert pool["type"] == "process"
    assert pool["status"] == "READY"  # a worker is polling it
    workers = local.post("/work_pools/plan2flow-test/workers/filter", {"limit": 10})
    assert [w["status"] for w in workers if w["name"].startswith("plan2flow-")] == ["ONLINE"]
    assert local.get("/block_types/slug/plan2flow-tester")["slug"] == "plan2flow-tester"
    again = local.cli("up", "--detach", "--port", str(free_port()))
    assert again.exit_code == 2
    assert "already running" in again.output


def test_deploy_creates_the_deployment_with_schedule_params_and_version(local: Local) -> None:
    plan = local.plan("created")
    result = local.cli("deploy", str(plan))
    assert result.exit_code == 0, result.output
    assert "deployment created/created: created" in result.output
    found = deployment(local, "created")
    assert found["version"] == graph_hash(plan)
    assert found["work_pool_name"] == "plan2flow-test"
    assert found["description"] == "Greet someone, then count the bytes."
    assert found["entrypoint"] == "created_flow.py:created"
    assert found["tags"] == ["plan2flow"]
    schema = found["parameter_openapi_schema"]["properties"]
    assert schema["who"]["default"] == "world"
    assert schema["who"]["type"] == "string"
    assert schema["times"]["type"] == "integer"
    [schedule] = found["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert schedule["active"] is True

    deadline = time.monotonic() + 90
    scheduled: list[Any] = []
    while not scheduled and time.monotonic() < deadline:
        scheduled = local.post(
            "/flow_runs/filter",
            {
                "deployments": {"id": {"any_": [found["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "limit": 5,
            },
        )
        time.sleep(1)
    assert scheduled, "the scheduler created no runs for the cron schedule"
    assert all(run["expected_start_time"].endswith(":00Z") for run in scheduled)


# Prefect's database does not change what this checks: PostgreSQL runs the tests of
# deployments and of triggered runs end to end; this one runs on SQLite alone.
@pytest.mark.parametrize("local", ["sqlite"], indirect=True)
def test_deploying_an_unchanged_plan_changes_nothing(local: Local) -> None:
    plan = local.plan("unchanged")
    assert local.cli("deploy", str(plan)).exit_code == 0
    before = deployment(local, "unchanged")
    result = local.cli("deploy", str(plan))
    assert result.exit_code == 0, result.output
    assert "unchanged/unchanged: unchanged" in result.output
    assert deployment(local, "unchanged")["updated"] == before["updated"]
    settings = memory_settings({"PLAN2FLOW_HOME": str(local.home)})
    with configured_database(settings) as database, database.session("default") as session:
        deploys = [e for e in entries(session, "default") if e.subject == "unchanged"]
    assert [(e.action, e.detail["change"]) for e in deploys] == [
        ("deploy", "created"),
        ("deploy", "unchanged"),
    ]
    assert deploys[0].detail["id"] == before["id"] and deploys[0].detail["server"] == local.api


def test_a_triggered_run_completes_with_the_plans_task_ids(local: Local) -> None:
    plan = local.plan("triggered")
    assert local.cli("deploy", str(plan)).exit_code == 0
    result = local.cli("trigger", str(plan), "--param", "who=server", "--wait")
    assert result.exit_code == 0, result.output
    assert "triggered: Completed" in result.output
    run_id = run_id_of(result.output)
    run = local.get(f"/flow_runs/{run_id}")
    assert run["parameters"] == {"who": "server"}
    assert run["state"]["type"] == "COMPLETED"
    task_runs = local.post(
        "/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 50}
    )
    assert {t["name"] for t in task_runs} == TASK_IDS
    assert all(t["state"]["type"] == "COMPLETED" for t in task_runs)

    by_name = local.cli("trigger", "triggered", "-p", "who=by name", "-p", "times=2", "--wait")
    assert by_name.exit_code == 0, by_name.output
    assert all(task in by_name.output for task in TASK_IDS)
    second = run_id_of(by_name.output)
    assert local.get(f"/flow_runs/{second}")["parameters"] == {"who": "by name", "times": 2}

    listed = local.cli("runs", str(plan))
    assert listed.exit_code == 0, listed.output
    assert f"{local.ui}/runs/flow-run/{run_id}" in listed.output
    assert "Completed" in listed.output
    assert "next scheduled run" in listed.output
    every = local.cli("runs", "-n", "1")
    assert every.exit_code == 0, every.output
    assert every.output.count("/runs/flow-run/") == 1
    unknown = local.cli("trigger", "nope", "-p", "n=1", "-p", "word=a b")
    assert unknown.exit_code == 2
    assert "no deployment 'nope/nope' on the server" in unknown.output


# Prefect's database does not change what this checks: PostgreSQL runs the tests of
# deployments and of triggered runs end to end; this one runs on SQLite alone.
@pytest.mark.parametrize("local", ["sqlite"], indirect=True)
def test_the_prefect_ui_shows_the_runs_tasks(local: Local, request: pytest.FixtureRequest) -> None:
    need_service(CHROMIUM is not None, "chromium is not installed (make system-deps installs it)")
    plan = local.plan("shown")
    assert local.cli("deploy", str(plan)).exit_code == 0
    triggered = local.cli("trigger", str(plan), "--wait")
    assert triggered.exit_code == 0, triggered.output
    run = local.get(f"/flow_runs/{run_id_of(triggered.output)}")
    backend = request.node.callspec.params["local"]
    with chromium() as page:
        page.open(f"{local.ui}/runs/flow-run/{run['id']}")
        header = page.wait_for_text([run["name"], "3 Task runs", "shown", "plan2flow-test"])
        assert run["name"] in header and "shown" in header and "3 Task runs" in header
        assert page.wait_for_canvas(), "the run's graph was not drawn"
        page.screenshot(ARTIFACTS / f"prefect-ui-flow-run-{backend}.png")
        assert page.click_text("Task Runs")
        text = page.wait_for_text(sorted(TASK_IDS))
        page.screenshot(ARTIFACTS / f"prefect-ui-task-runs-{backend}.png")
    assert set(text.split()) >= TASK_IDS


def test_deploying_a_modified_plan_bumps_the_version(local: Local) -> None:
    plan = local.plan("modified")
    assert local.cli("deploy", str(plan)).exit_code == 0
    before = graph_hash(plan)
    local.plan("modified", PLAN.replace("default: world", "default: team"))
    result = local.cli("deploy", str(plan))
    assert result.exit_code == 0, result.output
    assert "modified/modified: updated" in result.output
    assert f"version: '{before}' → '{graph_hash(plan)}'" in result.output
    assert "graph: plan: 1 changed" in result.output  # the default of `who`
    found = deployment(local, "modified")
    assert found["version"] == graph_hash(plan)
    assert found["parameter_openapi_schema"]["properties"]["who"]["default"] == "team"
    [step] = found["pull_steps"]
    source = Path(step["prefect.deployments.steps.set_working_directory"]["directory"])
    assert (source / "modified_flow.py").exists()
    assert source.parent == local.home / "deployments" / "modified"


# Prefect's database does not change what this checks: PostgreSQL runs the tests of
# deployments and of triggered runs end to end; this one runs on SQLite alone.
@pytest.mark.parametrize("local", ["sqlite"], indirect=True)
def test_prefect_deploy_accepts_the_written_prefect_yaml(local: Local, tmp_path: Path) -> None:
    target = tmp_path / "project" / "prefect.yaml"
    plan = local.plan("from-file")
    result = local.cli("deploy", str(plan), "--prefect-yaml", str(target), "--name", "from-yaml")
    assert result.exit_code == 0, result.output
    assert (target.parent / "from_file_flow.py").exists()
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=target.parent,
        env={**os.environ, "PREFECT_API_URL": local.api, "PREFECT_HOME": str(tmp_path / "p")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = local.get("/deployments/name/from-file/from-yaml")
    assert found["version"] == graph_hash(plan)
    assert found["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    assert found["work_pool_name"] == "plan2flow-test"


def test_down_stops_the_worker_then_the_server(tmp_path: Path, prefect_db: Path) -> None:
    """On a server of its own: the module's server stays up for the other tests."""
    port = free_port()
    home = tmp_path / "home"
    seed(home / "prefect", prefect_db)
    env: dict[str, str | None] = {"PLAN2FLOW_HOME": str(home), "PREFECT_API_URL": None}
    local = Local(home, f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", env)
    try:
        started = local.cli("up", "--detach", "--port", str(port), "--pool", "plan2flow-down")
        assert started.exit_code == 0, started.output
        state = json.loads((home / "server.json").read_text())
        result = local.cli("down")
        assert result.exit_code == 0, result.output
    finally:
        CliRunner().invoke(app, ["down"], env=env)
    lines = result.output.splitlines()
    assert lines[0].startswith("stopped the worker")
    assert lines[1].startswith("stopped the Prefect server")
    assert not (home / "server.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{local.api}/health", timeout=2)
    assert_gone(state["worker_pid"], state["server_pid"])
    again = local.cli("down")
    assert "no plan2flow server is running" in again.output


def assert_gone(*pids: int) -> None:
    """Each process has exited (or become a zombie, which only its parent can reap)."""
    deadline = time.monotonic() + 120
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        if alive:
            time.sleep(0.2)
    assert not alive, f"still running: {sorted(alive)}"


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def test_up_in_the_foreground_stops_everything_on_ctrl_c(tmp_path: Path, prefect_db: Path) -> None:
    port = free_port()
    seed(tmp_path / "home" / "prefect", prefect_db)
    env = {**os.environ, "PLAN2FLOW_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [str(BIN / "plan2flow"), "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # pytest-timeout bounds a start that never finishes
            seen.append(line)
            if "press Ctrl-C" in line:
                break
        assert any(f"Prefect UI:  http://127.0.0.1:{port}" in line for line in seen), seen
        pids = json.loads((tmp_path / "home" / "server.json").read_text())
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=300)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "stopped" in rest
    assert_gone(pids["worker_pid"], pids["server_pid"])
