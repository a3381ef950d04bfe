"""Runs of deployed plans on a Prefect server: list them, start one, wait for it.

These talk to Prefect's REST API with httpx: Prefect 3.8's synchronous client sends `null` for
filter fields its own server requires (HTTP 422), and plain requests keep the calls explicit.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any
from urllib.parse import quote

import httpx

from .deployments import DEPLOYMENT_TAG
from .errors import OperationError

PAGE = 200  # the server's PREFECT_API_DEFAULT_LIMIT
# Without the plan's task ids, the task runs count as all there once none changed for this long.
QUIET_SECONDS = 3.0


class RemoteError(OperationError):
    """The server is unreachable, or refused or does not know what was asked."""


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One flow run as `plan2flow runs` shows it."""

    id: str
    plan: str
    name: str
    state: str
    scheduled: str | None
    started: str | None
    duration: str


@dataclasses.dataclass(frozen=True)
class StartedRun:
    id: str
    name: str
    state: str


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A run's final state and its task runs' states, by plan task id, in start order."""

    state: str
    tasks: tuple[tuple[str, str], ...]


class Api:
    """A few calls of Prefect's REST API, with errors turned into `RemoteError`."""

    def __init__(self, api_url: str, timeout: float = 30) -> None:
        self.api_url = api_url.rstrip("/")
        self.client = httpx.Client(base_url=self.api_url, timeout=timeout)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._request(method, path, body)
        except httpx.HTTPError as error:
            raise RemoteError(
                f"cannot reach the Prefect server at {self.api_url}: {error}"
            ) from None
        if response.status_code == 404:
            raise LookupError(path)
        if response.is_error:
            raise RemoteError(
                f"the Prefect server answered {response.status_code} to {method} {path}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def _request(self, method: str, path: str, body: Any) -> httpx.Response:
        """Like Prefect's own client, a busy server's 429, 502 and 503 (its database locked
        under load) are tried again, waiting as it asks (``Retry-After``) or longer each time."""
        for attempt in range(BUSY_RETRIES):
            response = self.client.request(method, path, json=body)
            if response.status_code not in BUSY_STATUSES or attempt == BUSY_RETRIES - 1:
                break
            asked = _retry_after(response)
            time.sleep(BUSY_BACKOFF_SECONDS * 2**attempt if asked is None else asked)
        return response


BUSY_STATUSES = frozenset({429, 502, 503})
BUSY_RETRIES = 6
BUSY_BACKOFF_SECONDS = 0.5


def _retry_after(response: httpx.Response) -> float | None:
    """The server's ``Retry-After`` in seconds (capped at a minute), when it sends one."""
    try:
        return min(float(response.headers["retry-after"]), 60.0)
    except (KeyError, ValueError):
        return None


def _when(value: str | None) -> str | None:
    """`2026-11-24T08:07:14.305060Z` → `2026-11-24 08:07:14 UTC`."""
    if not value:
        return None
    return value[:19].replace("T", " ") + " UTC"


def _row(run: dict[str, Any], names: dict[str, str]) -> RunRow:
    return RunRow(
        id=run["id"],
        plan=names.get(run["flow_id"], run["flow_id"]),
        name=run.get("name") or "",
        state=(run.get("state") or {}).get("name", ""),
        scheduled=_when(run.get("expected_start_time")),
        started=_when(run.get("start_time")),
        duration=f"{run.get('total_run_time') or 0:.1f}s" if run.get("start_time") else "",
    )


def recent_runs(
    api_url: str, flow_name: str | None, limit: int
) -> tuple[list[RunRow], list[RunRow]]:
    """The newest runs of a plan's deployments (or of every plan2flow deployment), and the
    next scheduled run of each."""
    now = datetime.datetime.now(datetime.UTC).isoformat()
    scope: dict[str, Any] = {"deployments": {"tags": {"all_": [DEPLOYMENT_TAG]}}}
    if flow_name:
        scope["flows"] = {"name": {"any_": [flow_name]}}
    with Api(api_url) as api:
        past = api.call(
            "POST",
            "/flow_runs/filter",
            {
                **scope,
                "flow_runs": {"expected_start_time": {"before_": now}},
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": min(limit, PAGE),
            },
        )
        upcoming = api.call(
            "POST",
            "/flow_runs/filter",
            {
                **scope,
                "flow_runs": {
                    "expected_start_time": {"after_": now},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                },
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": PAGE,
            },
        )
        ids = sorted({run["flow_id"] for run in past + upcoming})
        flows = api.call("POST", "/flows/filter", {"flows": {"id": {"any_": ids}}}) if ids else []
    names = {f["id"]: f["name"] for f in flows}
    nexts: dict[str, dict[str, Any]] = {}
    for run in upcoming:
        nexts.setdefault(run["flow_id"], run)
    return [_row(run, names) for run in past], [_row(run, names) for run in nexts.values()]


def start_run(api_url: str, deployment: str, parameters: dict[str, Any]) -> StartedRun:
    """Create a run of `flow/deployment` now; the worker picks it up."""
    flow_name, _, name = deployment.partition("/")
    with Api(api_url) as api:
        try:
            target = api.call("GET", f"/deployments/name/{quote(flow_name)}/{quote(name)}")
        except LookupError:
            raise RemoteError(
                f"no deployment {deployment!r} on the server; create it with `plan2flow deploy`"
            ) from None
        run = api.call(
            "POST",
            f"/deployments/{target['id']}/create_flow_run",
            {"parameters": parameters, "tags": [DEPLOYMENT_TAG]},
        )
    return StartedRun(run["id"], run.get("name") or "", (run.get("state") or {}).get("name", ""))


def _task_runs(api: Api, flow_run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = api.call(
            "POST",
            "/task_runs/filter",
            {
                "flow_runs": {"id": {"any_": [flow_run_id]}},
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": PAGE,
                "offset": len(found),
            },
        )
        found += page
        if len(page) < PAGE:
            return found


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def wait_for_run(
    api_url: str,
    flow_run_id: str,
    timeout: float,
    expected: frozenset[str] = frozenset(),
    poll: float = 0.5,
    settle: float = 20,
) -> FinishedRun:
    """Poll until the run reaches a final state; then read its task runs until the `expected`
    task ids are there and final (or, without them, until they stop changing)."""
    deadline = time.monotonic() + timeout
    with Api(api_url) as api:
        while True:
            run = api.call("GET", f"/flow_runs/{flow_run_id}")
            state = run.get("state") or {}
            if state.get("type") in FINAL:
                break
            if time.monotonic() > deadline:
                raise RemoteError(
                    f"flow run {flow_run_id} is still {state.get('name', 'unknown')} "
                    f"after {timeout:.0f} s"
                )
            time.sleep(poll)
        # Task runs are recorded from events, a few seconds behind the flow run's own state.
        previous: list[tuple[str, str]] = []
        changed = time.monotonic()
        give_up = changed + settle
        while True:
            task_runs = _task_runs(api, flow_run_id)
            current = [(t["name"], (t.get("state") or {}).get("name", "")) for t in task_runs]
            if current != previous:
                previous, changed = current, time.monotonic()
            final = all((t.get("state") or {}).get("type") in FINAL for t in task_runs)
            seen = expected <= {name for name, _ in current} if expected else False
            quiet = time.monotonic() - changed >= QUIET_SECONDS
            if (current and final and (seen or quiet)) or time.monotonic() > give_up:
                break
            time.sleep(poll)
    return FinishedRun(state.get("name", ""), tuple(current))


__all__ = [
    "FinishedRun",
    "RemoteError",
    "RunRow",
    "StartedRun",
    "recent_runs",
    "start_run",
    "wait_for_run",
]
