"""Against a real `prefect server start` (the session's `plan2flow up` server on SQLite): runs
are recorded, task runs carry the plan's task ids, and the summary links to the run in the UI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from plan2flow_up import Local

pytestmark = [
    pytest.mark.slow,
    # Prefect's database does not change what this checks.
    pytest.mark.parametrize("local", ["sqlite"], indirect=True),
]

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def prefect_server(local: Local) -> str:
    """The API of the session's `plan2flow up` server on SQLite: a real `prefect server start`
    (tests/plan2flow_up.py), already migrated and shared with the other tests that use one."""
    return local.api


def run_hello(api: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`plan2flow run examples/plans/hello.yaml` in its own process, against `api`."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PLAN2FLOW_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect-client"),
    }
    done = subprocess.run(
        [str(BIN / "plan2flow"), "run", str(ROOT / "examples" / "plans" / "hello.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_plan_runs_on_a_real_server(prefect_server: str, tmp_path: Path) -> None:
    done = run_hello(prefect_server, tmp_path)
    match = re.search(r"view it at (\S+)/runs/flow-run/([0-9a-f-]{36})", done.stdout)
    assert match, done.stdout
    assert match.group(1) == prefect_server.removesuffix("/api")
    flow_run_id = match.group(2)

    flow_run = httpx.get(f"{prefect_server}/flow_runs/{flow_run_id}", timeout=10).json()
    assert flow_run["state"]["type"] == "COMPLETED"
    deadline = time.monotonic() + 30
    while True:
        task_runs = httpx.post(
            f"{prefect_server}/task_runs/filter",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}}},
            timeout=10,
        ).json()
        names = sorted(run["name"] for run in task_runs)
        if names == ["count", "done", "greet"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert names == ["count", "done", "greet"]
    flow = httpx.get(f"{prefect_server}/flows/{flow_run['flow_id']}", timeout=10).json()
    assert flow["name"] == "hello"


def test_task_events_reach_the_server(prefect_server: str, tmp_path: Path) -> None:
    done = run_hello(prefect_server, tmp_path)
    match = re.search(r"flow run: ([0-9a-f-]{36})", done.stdout)
    assert match
    flow_run_id = match.group(1)
    wanted = {
        (what, task)
        for task in ("greet", "count", "done")
        for what in ("plan2flow.task.started", "plan2flow.task.completed")
    }
    deadline = time.monotonic() + 60
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline and not wanted <= seen:
        response = httpx.post(
            f"{prefect_server}/events/filter",
            json={
                "filter": {
                    "event": {"prefix": ["plan2flow.task."]},
                    "resource": {"labels": {"plan2flow.correlation-id": [flow_run_id]}},
                },
                "limit": 50,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        for event in response.json()["events"]:
            resource = event["resource"]
            if resource.get("plan2flow.correlation-id") == flow_run_id:
                assert resource["plan2flow.plan"] == "hello"
                assert resource["plan2flow.graph-hash"].startswith("sha256:")
                seen.add((event["event"], resource["plan2flow.task-id"]))
        time.sleep(2)
    assert wanted <= seen
