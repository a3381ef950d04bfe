"""Against a real `prefect server start` on a free loopback port: runs are recorded, task runs
carry the plan's task ids, and the summary links to the run in the UI."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": "",
    }
    env.pop("PREFECT_API_URL")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((home / "server.log").read_text(errors="replace")[-2000:])
            time.sleep(0.5)
        yield api
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


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
