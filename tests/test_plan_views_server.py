"""Plan views on a real Prefect server with a process worker (`plan2flow up`), seen in headless
Chromium: the plan artifact's picture of the graph is drawn on the run's artifact page, and the
first run of a changed deployment, and only that run, publishes the semantic diff against the
version it replaced. Screenshots go to docs/images/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from approvals_support import poll
from browser import CHROMIUM, Page, chromium, screenshots
from plan2flow_up import Local
from support import need_service

pytestmark = pytest.mark.slow

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


def deploy_and_trigger(local: Local, plan: Path) -> str:
    deployed = local.cli("deploy", str(plan))
    assert deployed.exit_code == 0, deployed.output
    triggered = local.cli("trigger", str(plan))
    assert triggered.exit_code == 0, triggered.output
    return str(triggered.output.split("view it at ")[1].split()[0].rsplit("/", 1)[1])


def completed(local: Local, flow_run_id: str) -> None:
    def reached() -> bool:
        response = httpx.get(f"{local.api}/flow_runs/{flow_run_id}", timeout=30)
        state = response.json()["state"] if response.status_code == 200 else {"type": ""}
        assert state["type"] not in {"FAILED", "CRASHED"}, state["message"]
        return bool(state["type"] == "COMPLETED")

    poll(f"flow run {flow_run_id} completed", reached, DEADLINE)


def artifacts_of(local: Local, flow_run_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.post(
        f"{local.api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=30,
    )
    response.raise_for_status()
    return {item["key"]: item for item in response.json()}


def _image(page: Page, alt: str) -> dict[str, Any] | None:
    script = VISIBLE_IMAGE % json.dumps(alt)
    found = page.call("Runtime.evaluate", expression=script, returnByValue=True)
    value = found.get("result", {}).get("value")
    return value if value and value["width"] > 0 and value["shown"] > 0 else None


def _open_artifact(page: Page, local: Local, flow_run_id: str, key: str) -> None:
    """From the run's page: the Artifacts tab, then the artifact's card, as a person would."""
    page.open(f"{local.ui}/runs/flow-run/{flow_run_id}", height=1100)
    page.wait_for_text(["Completed", "Artifacts"])
    assert page.click_text("Artifacts")
    page.wait_for_text([key])
    poll(f"the {key} card opened", lambda: page.click_text(key), 30)


# On the session's `plan2flow up` (SQLite) that tests/test_deploy_server.py uses too.
@pytest.mark.parametrize("local", ["sqlite"], indirect=True)
def test_the_graph_picture_shows_and_the_first_run_of_a_change_publishes_the_diff(
    local: Local, tmp_path: Path
) -> None:
    images = screenshots(tmp_path)
    need_service(CHROMIUM is not None, "chromium is not installed (make system-deps installs it)")
    plan = local.home.parent / "plans-views" / "views.yaml"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(PLAN.format(extra=""), "utf-8")
    first = deploy_and_trigger(local, plan)
    completed(local, first)
    artifacts = artifacts_of(local, first)
    assert (
        "![The graph of views](data:image/svg+xml;base64,"
        in (artifacts["plan2flow-plan-views"]["data"])
    )
    assert "plan2flow-diff-views" not in artifacts  # the first version replaced nothing

    plan.write_text(PLAN.format(extra=EXTRA), "utf-8")
    changed = deploy_and_trigger(local, plan)
    completed(local, changed)
    again = deploy_and_trigger(local, plan)  # unchanged: the same version's second run
    completed(local, again)
    diff = artifacts_of(local, changed)["plan2flow-diff-views"]
    assert diff["type"] == "markdown"
    assert "| `announce` | added |" in diff["data"]
    assert "![What changed in views](data:image/svg+xml;base64," in diff["data"]
    assert "plan2flow-diff-views" not in artifacts_of(local, again)

    with chromium() as page:
        _open_artifact(page, local, first, "plan2flow-plan-views")
        page.wait_for_text(["Plan views", "Graph"])
        shown = poll("the graph's picture drawn", lambda: _image(page, "The graph of views"), 60)
        assert shown["width"] > 100
        page.screenshot(images / "plan-artifact-graph.png")
        _open_artifact(page, local, changed, "plan2flow-diff-views")
        page.wait_for_text(["plan2flow diff", "announce"])
        drawn = poll("the diff's picture drawn", lambda: _image(page, "What changed in views"), 60)
        assert drawn["width"] > 100
        page.screenshot(images / "plan-diff-artifact.png")
        # The new UI draws the same picture.
        plan_artifact = artifacts_of(local, first)["plan2flow-plan-views"]["id"]
        page.open(f"{local.ui}/v2/artifacts/artifact/{plan_artifact}", height=1100)
        page.wait_for_text(["Plan views", "Graph"])
        assert poll("the picture in /v2", lambda: _image(page, "The graph of views"), 60)
