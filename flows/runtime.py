"""The runtime that generated flow modules call: ``start`` → ``submit`` per task → ``finish``.

Every plan task becomes one Prefect task run named exactly by its task id. Upstream results are
passed as futures wrapped in ``allow_failure``, so a task whose upstream failed still gets a run
of its own and ends in the terminal state ``UpstreamFailed`` (like Airflow's ``upstream_failed``)
instead of waiting forever; independent branches go on. Results are small references to files
(see :mod:`plan2flow.flows.artifacts`), persisted by Prefect under a cache key made from the task's
Merkle hash and the digests of what it consumes, so a re-run skips what already succeeded.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import allow_failure, task
from prefect.cache_policies import CachePolicy
from prefect.client.schemas.objects import State
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture
from prefect.logging.loggers import get_run_logger, task_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Failed
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import NotSet

from plan2flow.home import plan2flow_home

from . import events
from .artifacts import Artifact, TaskOutput, digest_path
from .executors import TaskContext, TaskFailure, executor_for
from .graph import Graph, GraphTask, StaleModuleError, load_graph
from .templates import referenced_params, resolve_params

UPSTREAM_FAILED = "UpstreamFailed"
RETRY_JITTER = 0.1
"""Retry delays double from the task's ``retry_delay_seconds`` and vary by up to this share."""


# --- options and observers -------------------------------------------------------------------


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


Observer = Callable[[str, TaskRecord], None]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Set by ``plan2flow run``: force re-execution, watch progress."""

    no_cache: bool = False
    observer: Observer | None = None
    on_start: Callable[[str], None] | None = None
    """Called with the flow run id once the run exists (to cancel it on Ctrl-C)."""


_OPTIONS: contextvars.ContextVar[RunOptions | None] = contextvars.ContextVar(
    "plan2flow_run_options", default=None
)


@contextlib.contextmanager
def options(run_options: RunOptions) -> Iterator[None]:
    token = _OPTIONS.set(run_options)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


# --- the run ---------------------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class Planned:
    """A submitted plan task: its id and its Prefect future."""

    task_id: str
    future: PrefectFuture[Any]


_RUNS: dict[str, Run] = {}
_SUMMARIES: dict[str, RunSummary] = {}
_RUNS_LOCK = threading.Lock()
_KEEP_SUMMARIES = 64


def summary_of(flow_run_id: str) -> RunSummary | None:
    """The summary of a run that finished in this process (for ``plan2flow run``)."""
    with _RUNS_LOCK:
        return _SUMMARIES.get(flow_run_id)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


class Run:
    """One execution of a plan inside a flow run."""

    def __init__(self, graph: Graph, params: Mapping[str, Any], flow_run_id: str) -> None:
        self.graph = graph
        self.params = dict(params)
        self.flow_run_id = flow_run_id
        self.options = _OPTIONS.get() or RunOptions()
        home = plan2flow_home()
        self.workspace = home / "runs" / _safe(graph.name) / flow_run_id
        self.artifact_root = home / "artifacts" / _safe(graph.name)
        self.planned: dict[str, Planned] = {}
        self._records: dict[str, TaskRecord] = {task_id: TaskRecord() for task_id in graph.order}
        self._lock = threading.Lock()
        self._alive = _hold(self.workspace / RUN_LOCK)
        # A run that crashes never reaches finish(): close the lock when it is collected.
        self._release = weakref.finalize(self, self._alive.close)

    def staging_dirs(self) -> list[Path]:
        """The directories this run's tasks are writing their outputs into."""
        return list(self.artifact_root.glob(f".plan2flow-*.{self.flow_run_id}"))

    def release(self) -> None:
        """Let go of the run's lock: its staging directories may now be removed by anyone."""
        self._release()

    # records are written from task threads and hooks, read by the flow and observers
    def record(self, task_id: str, **changes: Any) -> TaskRecord:
        with self._lock:
            current = dataclasses.replace(self._records[task_id], **changes)
            self._records[task_id] = current
        if self.options.observer is not None:
            self.options.observer(task_id, current)
        return current

    def mark_started(self, task_id: str) -> None:
        """Record when a task first started (retries keep the first time)."""
        with self._lock:
            current = self._records[task_id]
            if current.started is None:
                self._records[task_id] = dataclasses.replace(current, started=time.time())

    def records(self) -> dict[str, TaskRecord]:
        with self._lock:
            return dict(self._records)

    def submit(self, task_id: str, wait_for: Sequence[Planned] = ()) -> Planned:
        """Submit one plan task after the given upstream tasks."""
        spec = self.graph.tasks.get(task_id)
        given = sorted(p.task_id for p in wait_for)
        if spec is None or given != sorted(spec.depends_on):
            raise StaleModuleError(
                f"the flow module submits {task_id!r} after {given}, but the graph "
                f"{'has no such task' if spec is None else f'says {sorted(spec.depends_on)}'}; "
                "the module was edited or is stale: compile the plan again"
            )
        upstream = {p.task_id: allow_failure(p.future) for p in wait_for}
        values = {name: self.params.get(name) for name in sorted(referenced_params(spec.params))}
        configured = _configured(
            spec.retries,
            spec.retry_delay_seconds,
            spec.timeout_seconds,
            self.options.no_cache,
            spec.tags,
        )
        future = configured.submit(
            plan=self.graph.name,
            task_id=task_id,
            task_hash=spec.hash,
            upstream=upstream,
            values=values,
            run_key=self.flow_run_id,
        )
        planned = Planned(task_id, future)
        self.planned[task_id] = planned
        return planned

    def submit_all(self) -> None:
        """Submit every task in the graph's order (plans too large to list in the module)."""
        for task_id in self.graph.order:
            spec = self.graph.tasks[task_id]
            self.submit(task_id, [self.planned[up] for up in spec.depends_on])

    def finish(self) -> Outcome:
        """Wait for every task; the flow fails when any task did not complete."""
        for submitted in self.planned.values():
            submitted.future.wait()
        records = self.records()
        tasks = []
        for task_id in self.graph.order:
            record = records[task_id]
            planned = self.planned.get(task_id)
            state = planned.future.state if planned else None
            name = (state.name or "") if state is not None else "NotSubmitted"
            if state is not None and state.is_completed() and record.cached:
                name = "Cached"
            message = record.message or (state.message or "" if state and state.is_failed() else "")
            tasks.append(
                TaskSummary(
                    task_id,
                    name,
                    record.duration,
                    record.attempts,
                    record.cached,
                    message,
                )
            )
        ok = all(t.state in {"Completed", "Cached"} for t in tasks)
        summary = RunSummary(
            plan=self.graph.name,
            graph_hash=self.graph.hash,
            flow_run_id=self.flow_run_id,
            ok=ok,
            tasks=tuple(tasks),
            workspace=str(self.workspace),
            artifacts=str(self.artifact_root),
        )
        self.release()
        with _RUNS_LOCK:
            _RUNS.pop(self.flow_run_id, None)
            _SUMMARIES[self.flow_run_id] = summary
            while len(_SUMMARIES) > _KEEP_SUMMARIES:
                _SUMMARIES.pop(next(iter(_SUMMARIES)))
        if ok:
            return summary
        failed = [t.id for t in tasks if t.state not in {"Completed", "Cached", UPSTREAM_FAILED}]
        not_run = [t.id for t in tasks if t.state == UPSTREAM_FAILED]
        message = f"{len(failed)} task(s) failed: {', '.join(failed)}"
        if not_run:
            message += f"; {len(not_run)} not run: {', '.join(not_run)}"
        return Failed(message=message, data=summary)


def start(module_file: str, graph_file: str, graph_hash: str, params: Mapping[str, Any]) -> Run:
    """Begin a plan run inside a flow: load and verify the graph, check the parameters."""
    graph = load_graph(module_file, graph_file, graph_hash)
    for name, spec in graph.params.items():
        if spec["enum"] is not None and params.get(name) not in spec["enum"]:
            raise ValueError(
                f"parameter {name!r} is {params.get(name)!r}; it must be one of {spec['enum']}"
            )
    flow_run_id = str(current_flow_run.id or f"local-{os.getpid()}-{time.time_ns()}")
    run = Run(graph, params, flow_run_id)
    discard_stale_staging(run.artifact_root, run.workspace.parent)
    with _RUNS_LOCK:
        _RUNS[flow_run_id] = run
    if run.options.on_start is not None:
        run.options.on_start(flow_run_id)
    return run


RUN_LOCK = ".plan2flow-run.lock"
"""Held (``flock``) in a run's workspace while the run lives; the kernel releases it when the
process dies, however it dies."""


def _hold(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held for the run, closed by Run.release
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _is_alive(lock: Path) -> bool:
    """Whether the run owning `lock` still runs (a missing lock: its run is long gone)."""
    try:
        handle = open(lock, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def discard_stale_staging(artifact_root: Path, runs_root: Path) -> None:
    """Remove the staging directories (``.<cache key>.<flow run id>``) of runs that died
    without cleaning up (a ``kill -9``, a crash); a live run's lock keeps its own."""
    try:
        entries = list(artifact_root.iterdir())
    except OSError:
        return
    for entry in entries:
        _, dot, run_id = entry.name.removeprefix(".").partition(".")
        if not (entry.name.startswith(".plan2flow-") and dot and entry.is_dir()):
            continue
        if not _is_alive(runs_root / run_id / RUN_LOCK):
            shutil.rmtree(entry, ignore_errors=True)


def discard_staging(flow_run_id: str) -> None:
    """Remove the staging directories of a run of this process that is being abandoned."""
    run = _run_for(flow_run_id)
    if run is None:
        return
    for stage in run.staging_dirs():
        shutil.rmtree(stage, ignore_errors=True)


def _run_for(flow_run_id: Any) -> Run | None:
    with _RUNS_LOCK:
        return _RUNS.get(str(flow_run_id))


# --- the one Prefect task every plan task runs as --------------------------------------------


def cache_key(
    plan: str, task_id: str, task_hash: str, upstream: Mapping[str, Any], values: Mapping[str, Any]
) -> str | None:
    """The task's Merkle hash plus the digests of every upstream artifact and the parameter values
    it uses; ``None`` (no caching) when an upstream did not complete."""
    digests: dict[str, dict[str, str]] = {}
    for upstream_id, output in sorted(upstream.items()):
        if not isinstance(output, TaskOutput):
            return None
        digests[upstream_id] = {name: a.digest for name, a in sorted(output.artifacts.items())}
    material = {
        "plan": plan,
        "task": task_id,
        "hash": task_hash,
        "upstream": digests,
        "values": values,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return "plan2flow-" + hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class PlanTaskCache(CachePolicy):
    """Prefect cache policy for plan tasks (see :func:`cache_key`)."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        return cache_key(
            inputs["plan"],
            inputs["task_id"],
            inputs["task_hash"],
            inputs["upstream"],
            inputs["values"],
        )


@functools.lru_cache(maxsize=256)
def _configured(
    retries: int,
    retry_delay_seconds: float,
    timeout_seconds: float | None,
    no_cache: bool,
    tags: tuple[str, ...],
) -> Any:
    """One Prefect task object per set of options: building one reads and hashes the task's
    source, which costs more than running a no-op task."""
    delays: float | list[float] = 0
    if retries:
        delays = exponential_backoff(backoff_factor=retry_delay_seconds)(retries)
    return plan_task.with_options(
        retries=retries,
        retry_delay_seconds=delays,
        retry_jitter_factor=RETRY_JITTER if retries else NotSet,
        timeout_seconds=timeout_seconds,
        refresh_cache=True if no_cache else NotSet,
        tags=list(tags),
    )


def _retry_unless_not_run(task: Any, task_run: Any, state: State) -> bool:
    return state.name != UPSTREAM_FAILED


def _publish(run: Run, what: str, task_id: str, logger: Any = None, **payload: Any) -> None:
    events.publish(
        what,
        plan=run.graph.name,
        task_id=task_id,
        graph_hash=run.graph.hash,
        flow_run_id=run.flow_run_id,
        logger=logger,
        **payload,
    )


def _on_completion(task: Any, task_run: Any, state: State) -> None:
    run = _run_for(task_run.flow_run_id)
    if run is None:
        return
    cached = state.name == "Cached"
    record = run.record(
        task_run.name, state="Cached" if cached else "Completed", ended=time.time(), cached=cached
    )
    if record.started is None:
        run.record(task_run.name, started=record.ended)
    _publish(run, "completed", task_run.name, task_run_logger(task_run), cached=cached)


_PREFECT_PREFIX = "Task run encountered an exception TaskFailure: "


def _on_failure(task: Any, task_run: Any, state: State) -> None:
    run = _run_for(task_run.flow_run_id)
    if run is None:
        return
    message = (state.message or "").replace(_PREFECT_PREFIX, "", 1)
    run.record(task_run.name, state=state.name or "Failed", ended=time.time(), message=message)
    what = "not_run" if state.name == UPSTREAM_FAILED else "failed"
    _publish(run, what, task_run.name, task_run_logger(task_run), message=message)


def _prepare(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


def _publish_outputs(stage: Path, final: Path) -> None:
    """Move a task's finished outputs to the directory named by its cache key. Another run with
    the same key made the same outputs from the same inputs: if it got there first, keep its."""
    if final.exists():
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(stage, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(stage, ignore_errors=True)


def _execute(run: Run, spec: GraphTask, key: str, upstream: Mapping[str, TaskOutput]) -> TaskOutput:
    if spec.type == "noop" and not spec.outputs:
        return TaskOutput(task_id=spec.id, artifacts={})  # a join point: no files at all
    final = run.artifact_root / key
    # Outputs are written to a directory of this run's own, then moved under the cache key.
    stage = _prepare(run.artifact_root / f".{key}.{run.flow_run_id}")
    workdir = run.workspace / _safe(spec.id)
    workdir.mkdir(parents=True, exist_ok=True)
    logs_dir = _prepare(run.workspace / ".logs" / _safe(spec.id))
    inputs = {}
    for name, ref in spec.inputs.items():
        producer, _, artifact = ref.rpartition(".")
        inputs[name] = Path(upstream[producer].artifacts[artifact].path)
    outputs = {name: stage / name for name in spec.outputs}
    namespaces = {
        "params": run.params,
        "inputs": {name: str(path) for name, path in inputs.items()},
        "outputs": {name: str(path) for name, path in outputs.items()},
    }
    context = TaskContext(
        task=spec,
        params=resolve_params(spec.type, spec.params, namespaces),
        inputs=inputs,
        outputs=outputs,
        workdir=workdir,
        logs_dir=logs_dir,
        correlation_id=run.flow_run_id,
        param_values={
            name: run.params.get(name) for name in sorted(referenced_params(spec.params))
        },
    )
    try:
        executor_for(spec)(context)
        missing = [name for name, path in outputs.items() if not path.exists()]
        if missing:
            raise TaskFailure(
                f"task {spec.id!r} did not produce its declared output(s): {', '.join(missing)}"
            )
        digests = {name: digest_path(path) for name, path in outputs.items()}
        _publish_outputs(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return TaskOutput(
        task_id=spec.id,
        artifacts={name: Artifact(str(final / name), digests[name]) for name in outputs},
        logs={p.stem: str(p) for p in sorted(logs_dir.iterdir())},
    )


@task(
    task_run_name="{task_id}",
    persist_result=True,
    cache_policy=PlanTaskCache(),
    retry_condition_fn=_retry_unless_not_run,
    on_completion=[_on_completion],
    on_failure=[_on_failure],
)
def plan_task(
    plan: str,
    task_id: str,
    task_hash: str,
    upstream: dict[str, Any],
    values: dict[str, Any],
    run_key: str,
) -> TaskOutput | State:
    """Run one plan task: check its upstream, resolve its params, execute, record its outputs."""
    run = _RUNS[run_key]
    spec = run.graph.tasks[task_id]
    not_done = sorted(
        name for name, output in upstream.items() if not isinstance(output, TaskOutput)
    )
    if not_done:
        return Failed(
            name=UPSTREAM_FAILED,
            message="not run: upstream "
            + ", ".join(repr(name) for name in not_done)
            + " did not complete",
        )
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context else 1
    run.record(task_id, state="Running" if attempt <= 1 else "Retrying", attempts=attempt)
    run.mark_started(task_id)
    _publish(
        run, "started" if attempt <= 1 else "retrying", task_id, get_run_logger(), attempt=attempt
    )
    key = cache_key(plan, task_id, task_hash, upstream, values)
    assert key is not None
    return _execute(run, spec, key, upstream)


# --- running a generated module directly -----------------------------------------------------


def _preflight(flow_function: Any) -> None:
    """Refuse a stale module before Prefect creates a flow run for it."""
    module = sys.modules[flow_function.fn.__module__]
    load_graph(str(module.__file__), module.GRAPH_FILE, module.GRAPH_HASH)


def main(flow_function: Any) -> None:
    """``python <name>_flow.py``: run the flow once with its default parameters."""
    try:
        _preflight(flow_function)
    except StaleModuleError as error:
        print(f"plan2flow: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    state = flow_function(return_state=True)
    raise SystemExit(0 if state.is_completed() else 1)
