"""Plan views on a real Prefect server with a process worker (`plan2flow up`), seen in headless
Chromium: the plan artifact's picture of the graph is drawn on the run's artifact page, and the
first run of a changed deployment, and only that run, publishes the semantic diff against the
version it replaced. Screenshots go to docs/images/."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from approvals_support import poll
from browser import CHROMIUM, Page, chromium, screenshots
from prefect_db import seed
from support import need_service
from typer.testing import CliRunner

from plan2flow.cli import app

pytestmark = pytest.mark.slow

POOL = "plan2flow-views"
DEADLINE = 240.0
"""Generous: the tests share two cores with other suites, and a loaded SQLite server is slow."""

PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata: {{name: views}}
tasks:
  - {{id: build, type: noop}}
  - {{id: check, type: noop, depends_on: [build]}}
  - id: review
    type: approval
    depends_on: [check]
    params: {{options: [ship, hold], timeout_seconds: 1, on_timeout: ship}}
  - {{id: ship, type: noop, depends_on: [review]}}
{extra}"""
EXTRA = "  - {id: announce, type: shell, depends_on: [ship], params: {argv: [echo, shipped]}}\n"

VISIBLE_IMAGE = """(() => {
  const image = [...document.querySelectorAll('img')].find(
    (i) => i.src.startsWith('data:image/svg+xml;base64,') && i.alt === %s);
  if (!image) return null;
  const box = image.getBoundingClientRect();
  return {width: image.naturalWidth, shown: box.width, top: box.top};
})()"""


class Server:
    """`plan2flow up --detach` for this module: a Prefect server, its UI and a worker."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.api = f"http://127.0.0.1:{port}/api"
        self.ui = f"http://127.0.0.1:{port}"
        self.env: dict[str, str | None] = {
            "PLAN2FLOW_HOME": str(home),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_API_URL": self.api,
        }

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(app, list(args), env=self.env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def deploy_and_trigger(self, plan: Path) -> str:
        deployed = self.cli("deploy", str(plan))
        assert deployed.exit_code == 0, deployed.output
        triggered = self.cli("trigger", str(plan))
        assert triggered.exit_code == 0, triggered.output
        return str(triggered.output.split("view it at ")[1].split()[0].rsplit("/", 1)[1])

    def completed(self, flow_run_id: str) -> None:
        def reached() -> bool:
            response = httpx.get(f"{self.api}/flow_runs/{flow_run_id}", timeout=30)
            state = response.json()["state"] if response.status_code == 200 else {"type": ""}
            assert state["type"] not in {"FAILED", "CRASHED"}, state["message"]
            return bool(state["type"] == "COMPLETED")

        poll(f"flow run {flow_run_id} completed", reached, DEADLINE)

    def artifacts(self, flow_run_id: str) -> dict[str, dict[str, Any]]:
        response = httpx.post(
            f"{self.api}/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
            timeout=30,
        )
        response.raise_for_status()
        return {item["key"]: item for item in response.json()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prefect_db: Path) -> Iterator[Server]:
    saved = dict(os.environ)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    home = tmp_path_factory.mktemp("views-home")
    seed(home / "prefect", prefect_db)
    up = Server(home, port)
    try:
        started = up.cli("up", "--detach", "--port", str(port), "--pool", POOL)
        assert started.exit_code == 0, started.output
        yield up
    finally:
        up.cli("down")
        os.environ.clear()
        os.environ.update(saved)


def _image(page: Page, alt: str) -> dict[str, Any] | None:
    script = VISIBLE_IMAGE % json.dumps(alt)
    found = page.call("Runtime.evaluate", expression=script, returnByValue=True)
    value = found.get("result", {}).get("value")
    return value if value and value["width"] > 0 and value["shown"] > 0 else None


def _open_artifact(page: Page, server: Server, flow_run_id: str, key: str) -> None:
    """From the run's page: the Artifacts tab, then the artifact's card, as a person would."""
    page.open(f"{server.ui}/runs/flow-run/{flow_run_id}", height=1100)
    page.wait_for_text(["Completed", "Artifacts"])
    assert page.click_text("Artifacts")
    page.wait_for_text([key])
    poll(f"the {key} card opened", lambda: page.click_text(key), 30)


def test_the_graph_picture_shows_and_the_first_run_of_a_change_publishes_the_diff(
    server: Server, tmp_path: Path
) -> None:
    images = screenshots(tmp_path)
    need_service(CHROMIUM is not None, "chromium is not installed (make system-deps installs it)")
    plan = server.home.parent / "plans-views" / "views.yaml"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(PLAN.format(extra=""), "utf-8")
    first = server.deploy_and_trigger(plan)
    server.completed(first)
    artifacts = server.artifacts(first)
    assert (
        "![The graph of views](data:image/svg+xml;base64,"
        in (artifacts["plan2flow-plan-views"]["data"])
    )
    assert "plan2flow-diff-views" not in artifacts  # the first version replaced nothing

    plan.write_text(PLAN.format(extra=EXTRA), "utf-8")
    changed = server.deploy_and_trigger(plan)
    server.completed(changed)
    again = server.deploy_and_trigger(plan)  # unchanged: the same version's second run
    server.completed(again)
    diff = server.artifacts(changed)["plan2flow-diff-views"]
    assert diff["type"] == "markdown"
    assert "| `announce` | added |" in diff["data"]
    assert "![What changed in views](data:image/svg+xml;base64," in diff["data"]
    assert "plan2flow-diff-views" not in server.artifacts(again)

    with chromium() as page:
        _open_artifact(page, server, first, "plan2flow-plan-views")
        page.wait_for_text(["Plan views", "Graph"])
        shown = poll("the graph's picture drawn", lambda: _image(page, "The graph of views"), 60)
        assert shown["width"] > 100
        page.screenshot(images / "plan-artifact-graph.png")
        _open_artifact(page, server, changed, "plan2flow-diff-views")
        page.wait_for_text(["plan2flow diff", "announce"])
        drawn = poll("the diff's picture drawn", lambda: _image(page, "What changed in views"), 60)
        assert drawn["width"] > 100
        page.screenshot(images / "plan-diff-artifact.png")
        # The new UI draws the same picture.
        plan_artifact = server.artifacts(first)["plan2flow-plan-views"]["id"]
        page.open(f"{server.ui}/v2/artifacts/artifact/{plan_artifact}", height=1100)
        page.wait_for_text(["Plan views", "Graph"])
        assert poll("the picture in /v2", lambda: _image(page, "The graph of views"), 60)
