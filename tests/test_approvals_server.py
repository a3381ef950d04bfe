"""Approvals on a real Prefect server with a process worker (`plan2flow up`): a suspended
approval releases the worker, survives a `kill -9` of it, and a new worker finishes the run
after the answer without running the earlier tasks again; and in headless Chromium the
Prefect UI's Resume form of an approval is filled in and submitted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from approvals_support import poll
from browser import CHROMIUM, Page, chromium, screenshots
from plan2flow_up import invoke
from prefect_db import seed
from support import free_port, need_service

pytestmark = pytest.mark.slow

POOL = "plan2flow-approvals"
DEADLINE = 240.0
"""Generous: the tests share two cores with other suites, and a loaded SQLite server is slow."""


class Server:
    """A server and worker started by `plan2flow up --detach` for this module."""

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
        return invoke(self.env, *args)

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def plan(self, name: str, text: str) -> Path:
        path = self.home.parent / f"plans-{name}" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def deploy_and_trigger(self, plan: Path) -> str:
        deployed = self.cli("deploy", str(plan))
        assert deployed.exit_code == 0, deployed.output
        triggered = self.cli("trigger", str(plan))
        assert triggered.exit_code == 0, triggered.output
        return str(triggered.output.split("view it at ")[1].split()[0].rsplit("/", 1)[1])

    def state(self, flow_run_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self.get(f"/flow_runs/{flow_run_id}")["state"]
        return state

    def wait_state(self, flow_run_id: str, kind: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            state = self.state(flow_run_id)
            assert state["type"] not in {"FAILED", "CRASHED"} - {kind}, state["message"]
            return state if state["type"] == kind else None

        result: dict[str, Any] = poll(f"flow run {flow_run_id} {kind}", reached, DEADLINE)
        return result

    def task_states(self, flow_run_id: str) -> dict[str, list[str]]:
        """Each task's runs' states, in start order (a resumed run starts again)."""
        response = httpx.post(
            f"{self.api}/task_runs/filter",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}}},
            timeout=30,
        )
        response.raise_for_status()
        found: dict[str, list[str]] = {}
        for run in sorted(response.json(), key=lambda r: r["start_time"] or r["created"]):
            found.setdefault(run["name"], []).append(run["state"]["name"])
        return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prefect_db: Path) -> Iterator[Server]:
    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("approvals-home")
    seed(home / "prefect", prefect_db)
    up = Server(home, free_port())
    port = up.api.rsplit(":", 1)[1].split("/")[0]
    try:
        started = up.cli("up", "--detach", "--port", port, "--pool", POOL)
        assert started.exit_code == 0, started.output
        yield up
    finally:
        up.cli("down")
        os.environ.clear()
        os.environ.update(saved)


SUSPEND_PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata: {{name: {name}}}
tasks:
  - id: build
    type: shell
    params:
      shell: true
      argv: ['echo "built $(date +%s.%N)" >> {log}; echo notes > "${{{{ outputs.notes }}}}"']
    outputs: [notes]
  - id: review
    type: approval
    inputs: {{notes: build.notes}}
    params:
      body: 'Release **{name}**? Notes in `${{{{ inputs.notes }}}}`.'
      options: [ship, hold]
      mode: suspend
      respondents: [alice]
      form: {{ticket: {{type: string, required: true}}}}
      branch: {{ship: [ship]}}
  - id: ship
    type: shell
    inputs: {{decision: review.decision}}
    params: {{argv: [cp, "${{{{ inputs.decision }}}}", {answer}]}}
"""


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the worker's process group; SIGKILL when it is still there after 30 s (a
    worker ends its flow runs' processes first, which can take longer on a loaded machine)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def _worker(server: Server) -> subprocess.Popen[bytes]:
    from plan2flow.server.local import prefect_executable, worker_environment

    env = {**worker_environment(server.home, server.api), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    with open(server.home / "logs" / "second-worker.log", "ab") as log:
        return subprocess.Popen(
            [prefect_executable(), "worker", "start", "--pool", POOL, "--type", "process"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_suspended_approval_survives_kill_9_of_the_worker(server: Server) -> None:
    log, answer = server.home / "build.log", server.home / "answer.json"
    plan = server.plan("suspended", SUSPEND_PLAN.format(name="suspended", log=log, answer=answer))
    flow_run_id = server.deploy_and_trigger(plan)
    suspended = server.wait_state(flow_run_id, "PAUSED")
    assert suspended["name"] == "Suspended"
    assert suspended["state_details"]["pause_key"].startswith("approval-review-")

    worker_pid = json.loads((server.home / "server.json").read_text())["worker_pid"]
    os.kill(worker_pid, signal.SIGKILL)
    poll(
        "the worker's end", lambda: not Path(f"/proc/{worker_pid}").exists() or _zombie(worker_pid)
    )

    listed = server.cli("approvals", "list", "--plan", "suspended")
    assert f"{flow_run_id}  suspended/review  Suspended  options: ship, hold" in listed.stdout
    refused = server.cli("approvals", "respond", flow_run_id, "--option", "ship", "--as", "bob")
    assert refused.exit_code == 1
    assert server.state(flow_run_id)["name"] == "Suspended"
    answered = _respond(
        server,
        "approvals",
        "respond",
        flow_run_id,
        "--option",
        "ship",
        "--field",
        "ticket=T-42",
        "--as",
        "alice",
    )
    assert answered.exit_code == 0, answered.output

    second = _worker(server)
    try:
        server.wait_state(flow_run_id, "COMPLETED")
    finally:
        _stop(second)
    assert len(log.read_text().splitlines()) == 1, "the task before the suspend ran again"
    decision = json.loads(answer.read_text())
    assert (decision["option"], decision["respondent"], decision["data"]) == (
        "ship",
        "alice",
        {"ticket": "T-42"},
    )
    # Task runs reach the server as events, a few seconds after they end.
    states = poll("the task runs", lambda: _recorded(server.task_states(flow_run_id)))
    assert states["build"] == ["Completed", "Cached"]  # the second start took it from the cache
    assert (states["review"], states["ship"]) == (["Completed"], ["Completed"])


def _respond(server: Server, *args: str) -> Any:
    """`plan2flow approvals ...` as a person would: again when a loaded SQLite server answers
    503 (a run already resumed refuses a second answer: asking again never answers twice)."""
    for _ in range(3):
        result = server.cli(*args)
        if "answered 503" not in result.output:
            return result
    return result


def _recorded(states: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """The task runs' states once both runs of `build` and those of `review` and `ship` are
    there (counting four states in all once returned before `ship` had arrived)."""
    seen = len(states.get("build", [])) >= 2 and states.get("review") and states.get("ship")
    return states if seen else None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


UI_PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata: {name: ui-approval}
tasks:
  - {id: build, type: noop}
  - id: review
    type: approval
    depends_on: [build]
    params:
      body: 'Ship **release 1.2** to production?'
      options: [ship, hold]
      respondents: [alice, bob]
      form:
        ticket: {type: string, required: true, description: The change ticket.}
      branch: {ship: [ship]}
  - {id: ship, type: noop, depends_on: [review]}
"""

FILL = """(() => {
  const dialog = document.querySelector('[role=dialog]');
  const fields = [...dialog.querySelectorAll('.schema-form-property')];
  const field = (label) => fields.find(
    (f) => f.querySelector('.schema-form-property__label').innerText.trim() === label);
  const set = (element, value) => {
    const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(element), 'value').set;
    setter.call(element, value);
    element.dispatchEvent(new Event('input', {bubbles: true}));
    element.dispatchEvent(new Event('change', {bubbles: true}));
  };
  set(field('option').querySelector('select'), 'ship');
  set(field('respondent').querySelector('select'), 'alice');
  set(field('ticket').querySelector('textarea'), 'T-77');
  return fields.length;
})()"""


def _submitted(page: Page) -> bool:
    """Click Submit until the dialog closes (the form may still be binding the values)."""
    if "Resume Flow Run" not in page.text():
        return True
    page.click_text("Submit")
    return False


def _fill(page: Page) -> int:
    result = page.call("Runtime.evaluate", expression=FILL, returnByValue=True)
    return int(result.get("result", {}).get("value") or 0)


def _worker_gone(server: Server) -> bool:
    """Whether the module's worker was killed (by the kill -9 test, in any order before)."""
    pid = json.loads((server.home / "server.json").read_text())["worker_pid"]
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


@pytest.fixture
def serving(server: Server) -> Iterator[Server]:
    """The module's server with a worker: a worker of the test's own when the kill -9 test
    has killed the module's."""
    replacement = _worker(server) if _worker_gone(server) else None
    yield server
    if replacement is not None:
        _stop(replacement)


def test_the_resume_form_of_the_prefect_ui_answers_an_approval(
    serving: Server, tmp_path: Path
) -> None:
    server, images = serving, screenshots(tmp_path)
    need_service(CHROMIUM is not None, "chromium is not installed (make system-deps installs it)")
    flow_run_id = server.deploy_and_trigger(server.plan("ui-approval", UI_PLAN))
    server.wait_state(flow_run_id, "PAUSED")
    with chromium() as page:
        page.open(f"{server.ui}/runs/flow-run/{flow_run_id}", height=1000)
        page.wait_for_text(["Paused", "Resume"])
        assert page.click_text("Resume")
        shown = page.wait_for_text(["Resume Flow Run", "Approval review of plan ui-approval"])
        for text in ("Ship release 1.2 to production?", "Who may answer", "alice, bob", "ticket"):
            assert text in shown
        assert _fill(page) == 3
        page.screenshot(images / "approval-resume-form.png")
        poll("the form submitted", lambda: _submitted(page), 30)
        server.wait_state(flow_run_id, "COMPLETED")
        page.open(f"{server.ui}/runs/flow-run/{flow_run_id}", height=1000)
        page.wait_for_text(["Completed", "Artifacts"])
        assert page.click_text("Artifacts")
        listed = page.wait_for_text(["plan2flow-plan-ui-approval", "plan2flow-outcome-ui-approval"])
        assert "plan2flow-plan-ui-approval" in listed
        page.screenshot(images / "approval-run-artifacts.png")
    decision = json.loads(next(server.home.glob("artifacts/ui-approval/*/decision")).read_text())
    assert (decision["option"], decision["respondent"], decision["data"]) == (
        "ship",
        "alice",
        {"ticket": "T-77"},
    )
