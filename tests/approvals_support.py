"""Running a plan with approvals on the real Prefect API of the tests: the flow runs in a thread,
the test finds its pause and answers it, as a person would from another process."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from support import build_module, import_flow, plan_text

from plan2flow.flows import runtime

DEADLINE_SECONDS = 120.0
# One request's patience: Prefect's own clients' (PREFECT_API_REQUEST_TIMEOUT). The session's
# API serves every xdist worker, and on a busy machine an answer took more than 10 s.
REQUEST_SECONDS = 60.0
"""Generous: the suites share two cores, and a loaded test server answers slowly."""


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the tests' Prefect API is not set"
    return str(url)


class RunningFlow:
    """A flow started in a thread; `state` and `summary` once it ended."""

    def __init__(self, flow: Any, **params: Any) -> None:
        self.flow_run_id = ""
        self.state: Any = None
        self.summary: Any = None
        self._started = threading.Event()
        # The test's Prefect settings (its result store) are context variables: carry them over.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, flow, params), daemon=True
        )
        self._thread.start()
        assert self._started.wait(DEADLINE_SECONDS), "the flow run did not start"

    def _on_start(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id
        self._started.set()

    def _run(self, flow: Any, params: dict[str, Any]) -> None:
        with runtime.options(runtime.RunOptions(on_start=self._on_start)):
            self.state = flow(**params, return_state=True)
        self.summary = runtime.summary_of(self.state)

    def join(self, timeout: float = DEADLINE_SECONDS) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the flow run did not end"

    def states(self) -> dict[str, str]:
        return {task.id: task.state for task in self.summary.tasks}


def start_plan(tmp_path: Path, name: str, tasks: str, **params: Any) -> RunningFlow:
    module = build_module(tmp_path / "build", plan_text(name, tasks))
    return RunningFlow(import_flow(module), **params)


def flow_run(flow_run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url()}/flow_runs/{flow_run_id}", timeout=REQUEST_SECONDS)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def poll(what: str, check: Callable[[], Any], timeout: float = DEADLINE_SECONDS) -> Any:
    """`check()` once it is truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_paused(running: RunningFlow) -> dict[str, Any]:
    """The flow run once it is paused on an approval and its form is saved."""

    def paused() -> dict[str, Any] | None:
        data = flow_run(running.flow_run_id)
        details = data["state"]["state_details"]
        if data["state"]["type"] != "PAUSED" or not details.get("run_input_keyset"):
            return None
        key = details["run_input_keyset"]["schema"]
        found = httpx.get(
            f"{api_url()}/flow_runs/{running.flow_run_id}/input/{key}", timeout=REQUEST_SECONDS
        )
        return data if found.status_code == 200 else None

    result: dict[str, Any] = poll("the approval's pause", paused)
    return result


def resume(flow_run_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """Answer through Prefect's REST API, as any HTTP client can."""

    def answered() -> httpx.Response | None:
        response = httpx.post(
            f"{api_url()}/flow_runs/{flow_run_id}/resume", json={"run_input": answer}, timeout=30
        )
        # A server whose database is busy under load says 503: as Prefect's clients do, ask again.
        return None if response.status_code == 503 else response

    response: httpx.Response = poll("an answer the server takes", answered)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data
