"""``plan2flow run``: compile (or read) a graph, write its flow module, run it, show progress.

This module sets Prefect's environment before Prefect is imported: ephemeral mode when no server
is configured (``PREFECT_API_URL`` unset), results under the plan2flow home, no telemetry, and
quiet console logs (the logs still reach the Prefect API and its UI).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.util
import itertools
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from plan2flow.compiler import (
    TaskGraph,
    TaskGraphError,
    read_taskgraph,
    render_flow,
    write_outputs,
)
from plan2flow.home import plan2flow_home

from .errors import OperationError
from .local import LARGE_PLAN_SETTINGS
from .local import running as running_server


class LaunchError(OperationError):
    """A problem with what the user asked to run (exit status 2)."""


class Interrupted(OperationError):
    """Ctrl-C or SIGTERM stopped the run, which was cancelled; the process must end now, with
    status 128 + the signal number, without waiting for task threads that cannot be stopped."""

    def __init__(self, signum: int, flow_run_id: str | None) -> None:
        name = signal.Signals(signum).name
        done = f"flow run {flow_run_id} cancelled" if flow_run_id else "nothing was run"
        super().__init__(f"interrupted ({name}): {done}")
        self.status = self.exit_status = 128 + signum


class _Signalled(BaseException):
    """Raised in the main thread by a signal handler, like KeyboardInterrupt for SIGTERM too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `_Signalled` in the main thread for the duration; after
    one, both stay ignored while the process cleans up and ends."""

    signals = (signal.SIGINT, signal.SIGTERM)
    caught: list[int] = []

    def raise_signalled(signum: int, _frame: Any) -> None:
        for sig in signals:  # a second Ctrl-C must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        caught.append(signum)
        raise _Signalled(signum)

    previous = {sig: signal.signal(sig, raise_signalled) for sig in signals}
    try:
        yield
    finally:
        if not caught:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _in_background(call: Callable[[], Any]) -> Any:
    """Run `call` (with this context) in a daemon thread; the main thread only waits, so a
    signal interrupts the wait and never Prefect's machinery half-way through a call."""
    outcome: list[Any] = []
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append(context.run(call))
        except BaseException as error:  # handed to the main thread
            failure.append(error)

    thread = threading.Thread(target=target, name="plan2flow-flow", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if failure:
        raise failure[0]
    return outcome[0]


def _cancel(plan: str, graph_hash: str, flow_run_id: str | None, signum: int) -> None:
    """Publish ``flow.cancelled``, mark the flow run Cancelled (both bounded: a lost bus or
    server must not hold the exit up) and remove the outputs its tasks were writing. Task
    commands die with this process."""
    if flow_run_id is None:
        return
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings
    from prefect.states import Cancelled

    from plan2flow.flows import runtime

    message = f"cancelled by {signal.Signals(signum).name} to plan2flow run"
    runtime.cancelled(plan, graph_hash, flow_run_id, message)
    runtime.discard_staging(plan, flow_run_id)
    with (
        contextlib.suppress(Exception),
        temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}),
        get_client(httpx_settings={"timeout": 5}, sync_client=True) as client,
    ):
        client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)


def prefect_environment(verbose: bool = False) -> None:
    """Defaults for running plans on this machine; explicit settings always win.

    Without ``PREFECT_API_URL``, the server that ``plan2flow up`` started is used when it runs,
    and an ephemeral one otherwise."""
    home = plan2flow_home()
    defaults = {
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if not os.environ.get("PREFECT_API_URL"):
        local = running_server()
        if local is not None:
            defaults["PREFECT_API_URL"] = local.api_url
    if not os.environ.get("PREFECT_API_URL") and "PREFECT_API_URL" not in defaults:
        defaults["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
        # A first start migrates a new database: on a busy machine it takes longer than 20 s.
        defaults["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
        # The temporary server records task runs from events, as `plan2flow up`'s does.
        defaults.update(LARGE_PLAN_SETTINGS)
    if not verbose:
        for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
            defaults[f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL"] = "CRITICAL"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def build(graph: TaskGraph, flow_source: str, source: str) -> Path:
    """Write the graph and its flow module under the plan2flow home; return the module's path."""
    return write_outputs(graph, flow_source, plan2flow_home() / "build" / graph.name)


def graph_from_file(path: Path) -> tuple[TaskGraph, str]:
    """A compiled TaskGraph file, its hash verified, and its flow module source."""
    try:
        graph = read_taskgraph(path)
    except TaskGraphError as error:
        raise LaunchError(str(error)) from None
    return graph, render_flow(graph, path.name)


def parse_params(
    pairs: Sequence[str],
    declared: Mapping[str, Mapping[str, Any]] | None,
    *,
    require_all: bool = True,
) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (``--param``) typed by the plan's parameter declarations; with
    `require_all`, every parameter without a default must be among them. With `declared` None
    (a plan known only by its name), any name goes and a value is JSON where it parses, else
    text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise LaunchError(f"--param {pair!r}: expected NAME=VALUE")
        if declared is None:
            values[name] = _untyped(raw)
            continue
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise LaunchError(f"--param {name!r}: the plan has no such parameter (it has: {known})")
        kind = declared[name]["type"]
        try:
            values[name] = _typed(kind, raw)
        except ValueError:
            raise LaunchError(f"--param {name}={raw!r}: not a valid {kind}") from None
    if declared is None:
        return values
    missing = sorted(n for n, spec in declared.items() if spec["required"] and n not in values)
    if missing and require_all:
        raise LaunchError(f"missing required parameter(s): {', '.join(missing)} (use --param)")
    return values


def _typed(kind: str, raw: str) -> Any:
    """A value of the declared type; `ValueError` when `raw` is not one. Numbers are finite:
    NaN and infinity have no JSON form (nor a place in a cache key)."""
    if kind == "string":
        return raw
    if kind == "integer":
        return int(raw)
    if kind == "number":
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(raw)
        return number
    if kind == "boolean":
        if raw.lower() not in {"true", "false"}:
            raise ValueError(raw)
        return raw.lower() == "true"
    return json.loads(raw, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _untyped(raw: str) -> Any:
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        return raw


_IMPORTS = itertools.count(1)


def import_flow(module_path: Path) -> Any:
    """Import a generated module (under a name of its own) and return its flow."""
    name = f"plan2flow_generated_{module_path.stem}_{next(_IMPORTS)}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    flows = [
        value
        for value in vars(module).values()
        if hasattr(value, "with_options")
        and getattr(value, "fn", None) is not None
        and value.fn.__module__ == name
    ]
    if len(flows) != 1:
        raise LaunchError(f"{module_path} does not define exactly one flow")
    return flows[0]


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f}s"


def _table(title: str, rows: list[tuple[str, str, str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("task", "state", "duration", "attempts"):
        table.add_column(column)
    styles = {"Completed": "green", "Cached": "cyan", "Running": "yellow", "Retrying": "yellow"}
    for task_id, state, duration, attempts in rows:
        style = styles.get(state, "red" if state not in {"Pending"} else "dim")
        table.add_row(Text(task_id), Text(state, style=style), duration, attempts)
    return table


@dataclasses.dataclass
class _Session:
    """What an interrupted run must clean up: its temporary server and its flow run."""

    server: Any = None
    flow_run_id: str | None = None
    halted: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set when the run is being cancelled: its threads publish no more events."""

    def started(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id


def run_plan(
    graph: TaskGraph,
    flow_source: str,
    source: str,
    params: Sequence[str],
    *,
    max_parallel: int | None,
    no_cache: bool,
    console: Console,
) -> int:
    """Run a compiled plan; print live progress and a summary; return the exit status.

    Ctrl-C or SIGTERM cancels the run and raises `Interrupted`."""
    session = _Session()
    with interruptible():
        try:
            return _run_plan(
                graph, flow_source, source, params, max_parallel, no_cache, console, session
            )
        except _Signalled as stop:
            session.halted.set()
            _cancel(graph.name, graph.hash, session.flow_run_id, stop.signum)
            if session.server is not None:
                session.server.stop()
            raise Interrupted(stop.signum, session.flow_run_id) from None


def _temporary_server() -> Any:
    """Prefect's ephemeral server, started here unless a server is configured."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    from .ephemeral import start_temporary_server

    try:
        return start_temporary_server()
    except RuntimeError as error:  # Prefect's way of saying it did not start in time
        raise LaunchError(f"the temporary Prefect server did not start: {error}") from None


def _run_plan(
    graph: TaskGraph,
    flow_source: str,
    source: str,
    params: Sequence[str],
    max_parallel: int | None,
    no_cache: bool,
    console: Console,
    session: _Session,
) -> int:
    values = parse_params(params, graph.document["params"])
    module_path = build(graph, flow_source, source)
    session.server = _temporary_server()

    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_UI_URL,
        temporary_settings,
    )
    from prefect.task_runners import ThreadPoolTaskRunner

    from plan2flow.flows import runtime

    flow_function = import_flow(module_path)
    if max_parallel is not None:
        flow_function = flow_function.with_options(
            task_runner=ThreadPoolTaskRunner(max_workers=max_parallel)
        )

    order = [task["id"] for task in graph.document["tasks"]]
    records: dict[str, Any] = {}
    lock = threading.Lock()
    live: Live | None = None

    def rows() -> list[tuple[str, str, str, str]]:
        with lock:
            current = dict(records)
        return [
            (
                task_id,
                current[task_id].state if task_id in current else "Pending",
                _duration(current[task_id].duration) if task_id in current else "",
                str(current[task_id].attempts) if task_id in current else "",
            )
            for task_id in order
        ]

    def observe(task_id: str, record: Any) -> None:
        with lock:
            records[task_id] = record
        if live is not None:
            live.update(_table(f"plan {graph.name}", rows()))

    console.print(
        f"running plan {graph.name} ({graph.hash}) from {source}", highlight=False, soft_wrap=True
    )
    options = runtime.RunOptions(
        no_cache=no_cache, observer=observe, on_start=session.started, cancelled=session.halted
    )
    if console.is_terminal:
        live = Live(_table(f"plan {graph.name}", rows()), console=console, transient=True)
        live.start()
    # Heartbeats let a server notice a dead flow run; the temporary server of ephemeral mode dies
    # with this process, so nobody would read them, and joining their thread costs up to 1 s.
    heartbeats = {} if PREFECT_API_URL.value() else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    try:
        with runtime.options(options), temporary_settings(updates=heartbeats):
            state = _in_background(lambda: flow_function(**values, return_state=True))
    finally:
        if live is not None:
            live.stop()

    flow_run_id = str(state.state_details.flow_run_id)
    summary = runtime.summary_of(state)
    if summary is None:
        console.print(
            Text.assemble(("flow run failed before its tasks ran: ", "red"), str(state.message)),
            soft_wrap=True,
        )
        return 1
    table = _table(
        f"plan {graph.name}: {'completed' if summary.ok else 'failed'}",
        [
            (t.id, t.state, _duration(t.duration_seconds), str(t.attempts or ""))
            for t in summary.tasks
        ],
    )
    console.print(table)
    for task in summary.tasks:
        if task.message and task.state not in {"Completed", "Cached"}:
            console.print(
                Text.assemble((task.id, "red"), ": ", task.message), highlight=False, soft_wrap=True
            )
    lines = [f"flow run: {flow_run_id}"]
    if PREFECT_API_URL.value() and PREFECT_UI_URL.value():
        lines.append(f"view it at {PREFECT_UI_URL.value()}/runs/flow-run/{flow_run_id}")
    lines += [f"workspace: {summary.workspace}", f"artifacts: {summary.artifacts}"]
    for line in lines:  # never wrapped: links and paths must stay whole in CI logs
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    return 0 if summary.ok else 1
