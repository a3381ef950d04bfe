"""The runtime that generated flow modules call: ``start`` → ``submit`` per task → ``finish``.

Every plan task becomes one Prefect task run named exactly by its task id. Upstream results are
passed as futures wrapped in ``allow_failure``, so a task whose upstream failed still gets a run
of its own and ends in the terminal state ``UpstreamFailed`` (like Airflow's ``upstream_failed``)
instead of waiting forever; independent branches go on. Results are small references to files
(see :mod:`plan2flow.flows.artifacts`), persisted by Prefect under a cache key made from the task's
Merkle hash and the digests of what it consumes, so a re-run skips what already succeeded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import allow_failure, task
from prefect.client.schemas.objects import State
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture
from prefect.logging.loggers import get_run_logger, task_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Failed
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import NotSet

from plan2flow.events import default_tenant, from_env
from plan2flow.home import plan2flow_home
from plan2flow.memory.audit import actor
from plan2flow.memory.cost_rules import compute_price

from . import approval_events, approvals, budgeting, commands, observing, plan_artifacts
from .artifacts import Attempts, TaskOutput, digest_path
from .caching import PlanTaskCache, cache_key
from .errors import StaleModuleError, TaskFailure
from .executors import TaskContext, executor_for
from .graph import Graph, GraphTask, load_graph
from .memory_bridge import RunMemory, begin_run, end_run, local_input, store_outputs
from .options import OPTIONS, RunOptions, options
from .publishing import (
    emit,
    flush_bus,
    mirror_to_prefect,
    relay_for,
    stored_events,
    this_process,
)
from .retries import forget, note_failure, previous_failure
from .summary import (
    ATTEMPTS_ATTRIBUTE,
    PREFECT_PREFIX,
    UPSTREAM_FAILED,
    Outcome,
    RunSummary,
    TaskRecord,
    TaskSummary,
    summary_of,
    task_record,
)
from .templates import referenced_params, resolve_params
from .workspace import (
    RUN_LOCK,
    RunPlace,
    artifact_root,
    discard_staging,
    discard_stale_staging,
    hold_lock,
    run_workspace,
    safe_name,
    staging_dirs,
)

__all__ = [
    "Outcome",
    "Run",
    "RunOptions",
    "RunSummary",
    "TaskSummary",
    "cancelled",
    "discard_staging",
    "main",
    "on_cancellation",
    "on_crashed_or_failed",
    "options",
    "plan_task",
    "start",
    "summary_of",
]

RETRY_JITTER = 0.1
"""Retry delays double from the task's ``retry_delay_seconds`` and vary by up to this share."""
LOGGER = logging.getLogger("plan2flow.runtime")
observing.configure_logs()  # Prefect's loggers are set up by now: ECS lines from here on
CANCEL_FLUSH_SECONDS = 2.0
DONE = frozenset({"Completed", "Cached", approvals.SKIPPED})
"""The final states of a task that let the run complete (``Skipped``: not chosen by an answer)."""
"""How long an interrupted run waits for its ``flow.cancelled`` event to be stored or spooled."""


# --- the run ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Planned:
    """A submitted plan task: its id and its Prefect future."""

    task_id: str
    future: PrefectFuture[Any]


class Run:
    """One execution of a plan inside a flow run: it submits the tasks and builds the summary
    from the states they end in. It lives in the flow's process; tasks get what they need in
    their arguments."""

    def __init__(self, graph: Graph, params: Mapping[str, Any], flow_run_id: str) -> None:
        self.graph = graph
        self.params = dict(params)
        self.flow_run_id = flow_run_id
        self.options = OPTIONS.get() or RunOptions()
        home = plan2flow_home()
        self.home = home
        self.workspace = run_workspace(graph.name, flow_run_id, home)
        self.artifact_root = artifact_root(graph.name, home)
        self.place = RunPlace(
            plan=graph.name,
            graph_hash=graph.hash,
            flow_run_id=flow_run_id,
            workspace=str(self.workspace),
            artifact_root=str(self.artifact_root),
            tenant=default_tenant(),
            process=this_process(),
            relay=relay_for(from_env()),
        )
        self.began = time.monotonic()
        self.planned: dict[str, Planned] = {}
        self.memory: RunMemory | None = None
        """The run's row and audit feed in project memory, from :func:`start` on."""
        self._alive = hold_lock(self.workspace / RUN_LOCK)
        # A run that crashes never reaches finish(): close the lock when it is collected.
        self._release = weakref.finalize(self, self._alive.close)

    def staging_dirs(self) -> list[Path]:
        """The directories this run's tasks are writing their outputs into."""
        return staging_dirs(self.graph.name, self.flow_run_id, self.home)

    def release(self) -> None:
        """Let go of the run's lock: its staging directories may now be removed by anyone."""
        self._release()

    def _settled(self, task_id: str, future: PrefectFuture[Any]) -> None:
        observer = self.options.observer
        if observer is not None:
            future.wait()  # done: this only takes its final state from the wrapped future
            observer(task_id, task_record(future.state))

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
            self.options.no_cache or spec.type == "approval",  # ask again in every run
            spec.tags,
        )
        if spec.type == "approval" and spec.params.get("mode") == "suspend":
            # Prefect suspends flows, not tasks: the flow asks, after the upstream tasks end.
            ended = {p.task_id: p.future.result(raise_on_failure=False) for p in wait_for}
            approvals.ask_in_flow(self.place, spec, ended, values)
        future = configured.submit(
            task_id=task_id, spec=spec, run=self.place, upstream=upstream, values=values
        )
        if self.options.observer is not None:
            future.add_done_callback(functools.partial(self._settled, task_id))
        planned = Planned(task_id, future)
        self.planned[task_id] = planned
        return planned

    def submit_all(self) -> None:
        """Submit every task in the graph's order (plans too large to list in the module)."""
        for task_id in self.graph.order:
            spec = self.graph.tasks[task_id]
            self.submit(task_id, [self.planned[up] for up in spec.depends_on])

    def finish(self) -> Outcome:
        """Wait for every task; the flow fails when any task did not complete. The summary is
        made of the tasks' final states alone, so it is the same whatever ran them.

        Interrupted while waiting (the runner's SIGTERM of a cancelled run, Ctrl-C), it stops
        the tasks' commands first: the process then ends without waiting them out."""
        try:
            for submitted in self.planned.values():
                submitted.future.wait()
        except BaseException:
            commands.stop_all(self.flow_run_id)
            raise
        tasks = []
        for task_id in self.graph.order:
            planned = self.planned.get(task_id)
            record = task_record(planned.future.state if planned else None)
            tasks.append(
                TaskSummary(
                    task_id,
                    record.state,
                    record.duration,
                    record.attempts,
                    record.cached,
                    record.message,
                )
            )
        ok = all(t.state in DONE for t in tasks)
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
        plan_artifacts.publish_outcome(self.graph.name, tasks)
        seconds = time.monotonic() - self.began
        observing.run_ended(self.place, None if ok else "tasks did not complete")
        if ok:
            emit(
                self.place,
                lambda run: run.flow("completed", tasks=len(tasks), duration_seconds=seconds),
            )
            flush_bus()
            self._remembered("completed")
            return summary
        failed = [t.id for t in tasks if t.state not in {*DONE, UPSTREAM_FAILED}]
        not_run = [t.id for t in tasks if t.state == UPSTREAM_FAILED]
        message = f"{len(failed)} task(s) failed: {', '.join(failed)}"
        if not_run:
            message += f"; {len(not_run)} not run: {', '.join(not_run)}"
        emit(
            self.place,
            lambda run: run.flow("failed", message=message, failed=failed, not_run=not_run),
        )
        flush_bus()
        self._remembered("failed")
        return Failed(message=message, data=summary)

    def _remembered(self, state: str) -> None:
        if self.memory is not None:
            self.memory.finish(state)


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
    priced = dataclasses.replace(run.place, compute_price=compute_price())
    run.place = budgeting.before_run(graph, priced)  # P2F801: refused when a budget is spent
    plan_artifacts.publish_plan(graph)
    discard_stale_staging(run.artifact_root, run.workspace.parent)
    run.memory = begin_run(run.place, params, actor())
    observing.run_began(run.place, params)
    run.place = dataclasses.replace(run.place, traceparent=observing.flow_traceparent(run.place))
    if run.options.on_start is not None:
        run.options.on_start(flow_run_id)
    emit(
        run.place,
        lambda events: events.flow("started", tasks=len(graph.tasks), parameters=dict(params)),
    )
    return run


def cancelled(
    plan: str,
    graph_hash: str,
    flow_run_id: str,
    message: str,
    timeout: float = CANCEL_FLUSH_SECONDS,
) -> None:
    """Publish ``flow.cancelled`` for a run being abandoned (``plan2flow run`` interrupted) and
    wait at most `timeout` seconds for it to be stored or spooled, so it outlives the process."""
    try:
        place = RunPlace(plan, graph_hash, flow_run_id, "", "", tenant=default_tenant())
    except Exception:
        LOGGER.exception("plan2flow: flow.cancelled of run %s was not published", flow_run_id)
        return
    emit(place, lambda run: run.flow("cancelled", message=message), final=True)
    flush_bus(timeout)
    # What the interrupted tasks made of it (failed, crashed) is the interrupt's doing.
    end_run(place, "cancelled", replacing=("running", "failed", "crashed"))


def _flow_place(flow: Any, flow_run: Any) -> RunPlace:
    """The run of a flow hook, from Prefect's arguments alone: Prefect may call the hook in
    another process than the flow's (a worker's, or ``serve``'s, on a cancellation)."""
    return RunPlace(
        flow.name, flow.version or "", str(flow_run.id), "", "", tenant=default_tenant()
    )


def on_cancellation(flow: Any, flow_run: Any, state: State) -> None:
    """Every generated flow's ``on_cancellation`` hook: a run cancelled in Prefect (the UI, the
    API, its worker) ends with ``flow.cancelled``, published wherever Prefect runs the hook.
    When ``plan2flow run`` cancelled it and published that event already, this one is the
    same event (same id), which the bus recognises."""
    message = state.message or "cancelled in Prefect"
    try:
        place = _flow_place(flow, flow_run)
    except Exception:
        LOGGER.exception("plan2flow: flow.cancelled of run %s was not published", flow_run.id)
        return
    emit(place, lambda run: run.flow("cancelled", message=message), final=True)
    flush_bus(CANCEL_FLUSH_SECONDS)
    observing.run_ended(place, f"cancelled: {message}")
    end_run(place, "cancelled")


def on_crashed_or_failed(flow: Any, flow_run: Any, state: State) -> None:
    """Every generated flow's ``on_crashed`` and ``on_failure`` hook: a run that crashed, or
    failed before ``Run.finish`` (an exception in the flow's body), ends with ``flow.failed``.
    A run that reached ``finish`` published it already: this one is the same event (same id),
    which the bus recognises."""
    message = f"{state.name or 'Failed'}: {state.message or 'the flow run ended'}"
    try:
        place = _flow_place(flow, flow_run)
    except Exception:
        LOGGER.exception("plan2flow: flow.failed of run %s was not published", flow_run.id)
        return
    emit(place, lambda run: run.flow("failed", message=message))
    flush_bus(CANCEL_FLUSH_SECONDS)
    observing.run_ended(place, message)  # the flow's span, when it began in this process
    end_run(place, "crashed" if state.is_crashed() else "failed")


# --- the one Prefect task every plan task runs as --------------------------------------------


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
    return state.name not in {UPSTREAM_FAILED, budgeting.BUDGET_STOPPED}


def _hook_place() -> RunPlace | None:
    """The run of the task whose hook runs, from the task's own arguments."""
    context = TaskRunContext.get()
    place = context.parameters.get("run") if context is not None else None
    return place if isinstance(place, RunPlace) else None


def _ended(place: RunPlace) -> None:
    """A task's last event is out: a task in another process than the flow's waits, bounded,
    for its bus to store or spool its events (a pool's worker may end without an exit handler)."""
    if place.process and place.process != this_process():
        flush_bus()


def _on_completion(task: Any, task_run: Any, state: State) -> None:
    forget(task_run.id)
    place = _hook_place()
    if place is None:
        return
    task_id = task_run.name
    if state.name == approvals.SKIPPED:
        approval_events.skipped(place, task_id, state.message or "", task_run_logger(task_run))
        _ended(place)
        return
    cached = state.name == "Cached"
    mirror_to_prefect(place, "completed", task_id, task_run_logger(task_run), cached=cached)
    if cached:
        key = state.state_details.cache_key
        attempt = max(task_run.run_count, 1)
        emit(place, lambda run: run.task("cached", task_id, attempt=attempt, cache_key=key))
    else:
        record = task_record(state)
        attempt = record.attempts or max(task_run.run_count, 1)
        seconds = record.duration
        emit(
            place,
            lambda run: run.task("completed", task_id, attempt=attempt, duration_seconds=seconds),
        )
    _ended(place)


def _on_failure(task: Any, task_run: Any, state: State) -> None:
    forget(task_run.id)
    place = _hook_place()
    if place is None:
        return
    message = (state.message or "").replace(PREFECT_PREFIX, "", 1)
    what = "not_run" if state.name == UPSTREAM_FAILED else "failed"
    task_id = task_run.name
    mirror_to_prefect(place, what, task_id, task_run_logger(task_run), message=message)
    if what == "not_run":
        context = TaskRunContext.get()
        upstream = context.parameters.get("upstream", {}) if context is not None else {}
        not_done = sorted(name for name, out in upstream.items() if not isinstance(out, TaskOutput))
        emit(
            place,
            lambda run: run.task("not_run", task_id, message=message, upstream=not_done),
        )
    else:
        attempt = max(task_run.run_count, 1)
        name = state.name or "Failed"
        emit(
            place,
            lambda run: run.task("failed", task_id, attempt=attempt, message=message, state=name),
        )
    _ended(place)


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


def _escalating(place: RunPlace, context: TaskContext) -> None:
    """Run a task whose result may escalate: its human tier pauses this run (imported here:
    the escalation chain is loaded only by plans that use it)."""
    from plan2flow.escalation.human import use_desk

    from .escalation_desk import PrefectDesk

    with use_desk(PrefectDesk(place)):
        executor_for(context.task)(context)


def _execute(
    place: RunPlace,
    spec: GraphTask,
    key: str,
    upstream: Mapping[str, TaskOutput],
    values: Mapping[str, Any],
) -> TaskOutput:
    if spec.type == "noop" and not spec.outputs:
        return TaskOutput(task_id=spec.id, artifacts={})  # a join point: no files at all
    artifacts, workspace = Path(place.artifact_root), Path(place.workspace)
    final = artifacts / key
    # Outputs are written to a directory of this run's own, then moved under the cache key.
    stage = _prepare(artifacts / f".{key}.{place.flow_run_id}")
    workdir = workspace / safe_name(spec.id)
    workdir.mkdir(parents=True, exist_ok=True)
    logs_dir = _prepare(workspace / ".logs" / safe_name(spec.id))
    inputs = {}
    for name, ref in spec.inputs.items():
        producer, _, artifact = ref.rpartition(".")
        inputs[name] = local_input(place, upstream[producer].artifacts[artifact])
    outputs = {name: stage / name for name in spec.outputs}
    namespaces = {
        "params": values,
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
        correlation_id=place.flow_run_id,
        param_values=dict(values),
    )
    try:
        if spec.type == "approval":
            approvals.run_approval(place, context)
        elif spec.escalation is not None:
            _escalating(place, context)
        else:
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
        artifacts=store_outputs(place, spec.id, {n: final / n for n in outputs}, digests),
        logs={p.stem: str(p) for p in sorted(logs_dir.iterdir())},
    )


def _first_start(context: TaskRunContext | None) -> float:
    """When the task run's first attempt began (Prefect keeps it across retries)."""
    began = context.task_run.start_time if context is not None else None
    return began.timestamp() if began is not None else time.time()


def _progress(task_id: str, record: TaskRecord) -> None:
    """Tell the launching process's observer that a task started, when the task runs in that
    process (Prefect's thread pool copies the context into its threads); wherever a task runs,
    the observer hears of it again when it ends, from the flow (see `Run.submit`)."""
    run_options = OPTIONS.get()
    if run_options is not None and run_options.observer is not None:
        run_options.observer(task_id, record)


def _plan_task(
    task_id: str,
    spec: GraphTask,
    run: RunPlace,
    upstream: dict[str, Any],
    values: dict[str, Any],
) -> TaskOutput | State:
    """Run one plan task: check its upstream, resolve its params, execute, record its outputs.

    Everything it needs comes in its arguments, and what the run's summary needs goes back in
    what it returns: its output, or the exception it fails with, carries its `Attempts`."""
    not_done = sorted(
        name
        for name, output in upstream.items()
        if not isinstance(output, TaskOutput | approvals.Skipped)
    )
    if not_done:
        return Failed(
            name=UPSTREAM_FAILED,
            message="not run: upstream "
            + ", ".join(repr(name) for name in not_done)
            + " did not complete",
        )
    skipped = approvals.skip_reason(spec, upstream)
    if skipped is not None:
        return approvals.skipped_state(task_id, skipped)
    spec, stopped = budgeting.before_task(run, spec)
    if stopped is not None:  # P2F802: a budget is spent, the task does not start
        return Failed(name=budgeting.BUDGET_STOPPED, message=str(stopped))
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context else 1
    started = _first_start(context)
    state = "Running" if attempt <= 1 else "Retrying"
    _progress(task_id, TaskRecord(state, attempt, started=started))
    task_run_id = context.task_run.id if context else None
    if attempt <= 1:
        mirror_to_prefect(run, "started", task_id, get_run_logger(), attempt=attempt)
        emit(run, lambda events: events.task("started", task_id, tasktype=spec.type))
    else:
        before = previous_failure(task_run_id)
        message = before.message if before else ""
        delay = before.waited() if before else None
        mirror_to_prefect(
            run, "retrying", task_id, get_run_logger(), attempt=attempt, message=message
        )
        emit(
            run,
            lambda events: events.task(
                "retrying", task_id, attempt=attempt, message=message, delay_seconds=delay
            ),
        )
    began = time.monotonic()
    try:
        key = cache_key(run.plan, task_id, spec.hash, upstream, values)
        if key is None:
            raise TaskFailure(f"task {task_id!r}: a parameter value has no JSON form")
        with observing.task_scope(run, task_id, spec.type, attempt):
            output = _execute(run, spec, key, upstream, values)
    except BaseException as error:
        setattr(error, ATTEMPTS_ATTRIBUTE, Attempts(attempt, started, time.time()))
        note_failure(task_run_id, error)
        raise
    finally:
        budgeting.charge(run, spec, attempt, began)
    if output.artifacts:
        emit(run, lambda events: stored_events(events, task_id, attempt, output))
    return dataclasses.replace(output, attempts=Attempts(attempt, started, time.time()))


# The function stays apart from its Task, under a name of its own: a process pool then pickles
# it by reference (the worker process imports this module; about 50 bytes per task) instead of
# by value, a copy of its code and globals (about 6 KB per task).
plan_task = task(
    name="plan_task",
    task_run_name="{task_id}",
    persist_result=True,
    cache_policy=PlanTaskCache(),
    retry_condition_fn=_retry_unless_not_run,
    on_completion=[_on_completion],
    on_failure=[_on_failure],
)(_plan_task)


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
