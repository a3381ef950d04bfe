"""What a run reports: each task's record as it happens, and the summary the flow returns in
its final state (completed, or failed with the summary as its data)."""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect._internal.result_records import ResultRecord  # prefect.results does not export it
from prefect.client.schemas.objects import State

from .artifacts import Attempts, TaskOutput

UPSTREAM_FAILED = "UpstreamFailed"
"""The terminal state of a task whose upstream did not complete (Airflow's upstream_failed)."""


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """What is known about one task of a run, as it happens."""

    state: str = "Pending"
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    cached: bool = False
    message: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    id: str
    state: str
    duration_seconds: float | None
    attempts: int
    cached: bool
    message: str


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """The outcome of a plan run, task by task (returned by the flow)."""

    plan: str
    graph_hash: str
    flow_run_id: str
    ok: bool
    tasks: tuple[TaskSummary, ...]
    workspace: str
    artifacts: str

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for item in self.tasks:
            found[item.state] = found.get(item.state, 0) + 1
        return dict(sorted(found.items()))


Outcome = RunSummary | State
"""What a generated flow returns: the summary, or a Failed state carrying it."""


def summary_of(state: State) -> RunSummary | None:
    """The summary a plan's flow returned in its final state (completed, or failed with the
    summary as its data); ``None`` when the flow failed before its tasks ran."""
    data = state.result(raise_on_failure=False)
    return data if isinstance(data, RunSummary) else None


PREFECT_PREFIX = "Task run encountered an exception TaskFailure: "
ATTEMPTS_ATTRIBUTE = "plan2flow_attempts"
"""The attribute of a task's exception that carries its `Attempts`."""


def task_record(state: State | None) -> TaskRecord:
    """What a task's final state says about it: the name of the state, and the attempts that
    its output or its exception carries back from wherever it ran."""
    if state is None:
        return TaskRecord(state="NotSubmitted")
    name = state.name or ""
    if name == "Cached":  # served from the cache: nothing ran in this run
        return TaskRecord(state=name, cached=True)
    message = ""
    if state.is_completed():
        data = _result(state)
        attempts = data.attempts if isinstance(data, TaskOutput) else None
    elif state.is_final():
        data = _result(state) if state.data is not None else None
        attempts = (
            getattr(data, ATTEMPTS_ATTRIBUTE, None) if isinstance(data, BaseException) else None
        )
        message = (state.message or "").replace(PREFECT_PREFIX, "", 1)
    else:
        return TaskRecord(state=name)
    if not isinstance(attempts, Attempts):
        return TaskRecord(state=name, message=message)
    return TaskRecord(
        state=name,
        attempts=attempts.count,
        started=attempts.started,
        ended=attempts.ended,
        message=message,
    )


def _result(state: State) -> Any:
    """The state's result, taken from the state itself when it holds it (a task's final state
    in the process that ran it: the completion hook's, its future's), which is what
    ``State.result`` returns too, but without its round trip to Prefect's event loop thread:
    about 0.2 ms of CPU per call on its own, and more while the task threads hold the GIL; the
    completion hook and the run's summary read one per task."""
    data = state.data
    if isinstance(data, ResultRecord):
        return data.result
    return state.result(raise_on_failure=False)
