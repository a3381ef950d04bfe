"""Run-time overhead benchmark: a generated plan2flow flow against the same DAG in plain Prefect.

Usage::

    python bench/run_overhead.py N [--rounds R] [--workers W] [--log-level LEVEL]
        [--observability MODE[,MODE...]] [--variants V[,V...]] [--pin]

The DAG is the layered plan of ``bench/compile.py`` (N ``noop`` tasks, about sqrt(N) per layer,
1 to 3 upstream tasks each, seed 42), with ``defaults: {max_parallelism: W}`` (10 by default).
Four flows are timed, in one process, alternately, R rounds (3 by default), after one untimed
warm-up run of each (the first flow of a process starts Prefect's ephemeral server, which takes
several seconds):

* ``generated``: the flow module plan2flow generates for the plan (``run.submit`` per task), run
  with ``RunOptions(no_cache=True)`` as ``plan2flow run --no-cache`` runs it: every task executes
  (no cache read), and still persists its result, so every round does the same work;
* ``handwritten``: the plain Prefect flow one would write by hand for the same DAG: one ``@task``
  no-op submitted per node, ``with_options(task_run_name=<id>)``, ``wait_for=[upstream futures]``,
  the same ``ThreadPoolTaskRunner(max_workers=W)``, and, like the generated flow,
  ``persist_result=True`` with a cache key (``INPUTS``, the node id) and ``refresh_cache=True``;
  this is the like-for-like baseline, because persisting results is what lets plan2flow resume a
  failed run without re-running what succeeded, and a flow written by hand for the same purpose
  would persist them as well;
* ``bare``: the same hand-written flow without persistence (``persist_result=False``,
  ``NO_CACHE``), for reference: the cheapest a Prefect DAG gets;
* ``empty``: a flow with no task and the same task runner: the fixed cost of any flow run (flow
  run creation, and up to 1 s for the heartbeat thread to stop at the end).

What the generated flow does on top of ``handwritten``, per task: it checks the submitted
upstream tasks against the graph, passes upstream results as ``allow_failure`` futures (Prefect
resolves them as parameters, one round trip to its event loop thread per edge, where
``wait_for`` only waits), computes its own cache key (JSON + SHA-256), emits two extra Prefect
events (``plan2flow.task.started`` / ``completed``, which the server stores too) and the same two
on plan2flow's bus (whose audit feed journals them in project memory), runs a completion hook,
and keeps a per-task record; a ``noop`` without outputs makes no directory and writes no file.

Reported (one JSON line), per kind of time: ``wall``, the seconds of the flow call as a user
waits for it; ``body``, the seconds until the flow's final state was set, which leaves out the end
of the flow run's heartbeat thread (it sleeps in 1 s steps and is joined when the flow ends, so
wall times are rounded up to the next whole second since the flow started); ``cpu``, the CPU
seconds (user + system, every thread) of the benchmarking process during the call; ``cpu_after``,
its CPU seconds from the end of the call until the server has recorded the run; ``server_cpu``,
the CPU seconds of its child processes (the ephemeral server) from the call until then. CPU times
barely move with other load on the machine, wall and body times do. For each: the median seconds
of every flow, milliseconds per task (median / N), marginal milliseconds per task (median minus
the median empty flow, over N), and the ratios ``generated / handwritten`` (the goal is at most
1.10) and ``generated / bare``. The server records task runs from events, in the background,
after the flow has returned; every run (warm-up included) is followed, untimed, by a wait until
the server has recorded all of its task runs as completed (polled every 0.25 s) plus 0.5 s, so
that no run pays for the previous run's backlog; ``settle_median_seconds`` reports that wait.
``PREFECT_LOGGING_LEVEL`` is WARNING unless ``--log-level`` says otherwise, so INFO logs are
neither printed nor shipped to the API; ``plan2flow run`` ships them.

``--observability`` sets the process's observability (``off``, ``untraced``, ``on``; see
``--help``); it is read when the runtime is imported, so with several modes (``off,untraced,on``)
each mode gets a process of its own (its own ephemeral server), started and warmed up one after
the other, and the parent (which imports no Prefect) asks them in turn for one run at a time: in
round i the modes' order is rotated by i and the ``--variants`` (default ``generated,handwritten``)
reversed every other round, so slow phases of the machine hit every mode alike. Each run's
figures go to stderr as a JSON line when measured. Reported: per mode and variant, each kind's
median, quartiles, min, max and every round (``cpu_all`` is cpu + cpu_after + server_cpu); each
mode against the first: the ratio of the medians and the median of the rounds' ratios (round i
against round i, run minutes apart) with its 95 % confidence interval (distribution-free: order
statistics of the rounds' ratios; 6 rounds or more), and the ratio of the minima (other load
only ever adds CPU time: as ``timeit`` says, the fastest run is the one least disturbed);
per mode, generated / handwritten and the extra
milliseconds per task; the 1-minute load average at the start, every round and the end.

``--pin`` (Linux, 2 CPUs or more) keeps the flows' processes on one CPU, the last this process
may use, once warmed up, and everything else it starts (the Prefect servers, the trace receiver)
on the others. A flow's threads take turns holding the interpreter; on two CPUs, with a server
recording the run beside them, how often a hand-over crosses CPUs, and so the flow's CPU time,
varies from run to run. On one CPU the hand-overs cost the same every time.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import functools
import gc
import importlib.util
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
SEED = 42
VARIANTS = ("generated", "handwritten", "bare", "empty")


def _load_bench_module(stem: str) -> ModuleType:
    """A sibling benchmark script, imported by path (bench/ is not a package)."""
    name = f"plan2flow_bench_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def configure_environment(home: Path, log_level: str = "WARNING") -> None:
    """Prefect and plan2flow settings for a benchmark process; call before importing prefect.

    Explicit settings in the environment win, except the logging levels."""
    defaults = {
        "PLAN2FLOW_HOME": str(home / "plan2flow"),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "plan2flow" / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # A loaded machine starts the ephemeral server in more than Prefect's 20 s.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    if not os.environ.get("PREFECT_API_URL"):
        defaults["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ["PREFECT_LOGGING_LEVEL"] = log_level
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ[f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL"] = "WARNING"


def temporary_home(prefix: str) -> Path:
    """A temporary directory removed at exit, after Prefect's own exit handlers (which stop the
    ephemeral server that uses it): register this before prefect is imported."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def plan_text(n: int, max_parallelism: int = 10, seed: int = SEED) -> str:
    """The layered plan of bench/compile.py with the given ``max_parallelism``."""
    text = _load_bench_module("compile").build_plan(n, seed)
    head, sep, tasks = text.partition("\ntasks:\n")
    return f"{head}\ndefaults:\n  max_parallelism: {max_parallelism}{sep}{tasks}"


def build_generated(directory: Path, text: str) -> tuple[Any, dict[str, Any]]:
    """Compile `text` into `directory`, import the flow module; the flow and the graph document.

    As ``tests/support.py`` (build_module, import_flow) does it."""
    from plan2flow.compiler import compile_plan
    from plan2flow.compiler.codegen import flow_file_name, graph_file_name
    from plan2flow.server.launch import import_flow

    result = compile_plan(text, "plan.yaml")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / graph_file_name(result.graph.name)).write_text(result.graph.text, "utf-8")
    path = directory / flow_file_name(result.graph.name)
    path.write_text(result.flow_source, "utf-8")
    flow = import_flow(path)
    return flow, result.graph.document


def dag_of(document: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(task id, upstream ids) in the graph's (topological) order."""
    return [(task["id"], list(task["depends_on"])) for task in document["tasks"]]


def handwritten_flow(dag: list[tuple[str, list[str]]], max_workers: int, persist: bool) -> Any:
    """The plain Prefect flow of `dag`: one no-op task run per node, upstream as ``wait_for``."""
    from prefect import flow, task
    from prefect.cache_policies import INPUTS, NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    if persist:
        options: dict[str, Any] = {
            "persist_result": True,
            "cache_policy": INPUTS,
            "refresh_cache": True,
        }
    else:
        options = {"persist_result": False, "cache_policy": NO_CACHE}

    @task(name="noop", **options)
    def noop(node: str) -> str:
        return node

    @flow(
        name="handwritten" if persist else "bare",
        task_runner=ThreadPoolTaskRunner(max_workers=max_workers),
    )
    def dag_flow() -> int:
        futures: dict[str, Any] = {}
        for node, upstream in dag:
            futures[node] = noop.with_options(task_run_name=node).submit(
                node, wait_for=[futures[up] for up in upstream]
            )
        for future in futures.values():
            future.wait()
        return sum(1 for future in futures.values() if future.state.is_completed())

    return dag_flow


def empty_flow(max_workers: int) -> Any:
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    @flow(name="empty", task_runner=ThreadPoolTaskRunner(max_workers=max_workers))
    def empty() -> int:
        return 0

    return empty


@dataclasses.dataclass(frozen=True)
class Timing:
    """One flow run: wall seconds of the call; seconds until its final state was set (before the
    heartbeat thread is joined, which rounds the wall time up to the next whole second); seconds
    the server then still needed to record every task run as completed; CPU seconds (user +
    system) of this process during the call (every thread), of this process from the end of the
    call until the server had recorded the run (Prefect's event worker still sending, the bus's
    subscribers, and the settle wait's own requests), and of its child processes (the ephemeral
    server) from the start of the call until then."""

    wall: float
    body: float
    settle: float = 0.0
    cpu: float = 0.0
    cpu_after: float = 0.0
    server_cpu: float = 0.0


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


_NOT_SERVERS: set[str] = set()
"""Child processes left out of `children_cpu` (the trace receiver)."""


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's running child processes but the trace
    receiver, from /proc (the ephemeral Prefect server is one); 0.0 without /proc."""
    me, total = str(os.getpid()), 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit() or entry in _NOT_SERVERS:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if fields[1].decode() == me:  # fields: state, ppid, ..., utime (12th), stime (13th)
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


class Clock:
    """Wall, CPU and child-process CPU readings around one flow run."""

    def __init__(self) -> None:
        self.epoch = time.time()
        self.cpu0, self.children0 = time.process_time(), children_cpu()
        self.started = time.perf_counter()

    def called(self) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu0

    def timing(self, state: Any, n: int) -> Timing:
        """After the call: wait until the server has recorded the run (see `settle`)."""
        waited = settle(state, n)
        return Timing(
            wall=self.wall,
            body=state.timestamp.timestamp() - self.epoch,
            settle=waited,
            cpu=self.cpu,
            cpu_after=time.process_time() - self.cpu0 - self.cpu,
            server_cpu=children_cpu() - self.children0,
        )


SETTLE_TIMEOUT = 300.0
SETTLE_POLL = 0.25
SETTLE_GRACE = 0.5
"""Seconds to wait after the server has recorded every task run (its event persister may still
be flushing the run's events)."""


def settle(state: Any, n: int, timeout: float = SETTLE_TIMEOUT) -> float:
    """Wait until the server has recorded the run's `n` task runs as completed; the seconds it took.

    Task runs reach the server as events, processed in the background: a run started while the
    server is still recording the previous one pays for that backlog (its flow run creation
    waits), so every timed run starts on a settled server."""
    from prefect.client.orchestration import get_client

    started = time.perf_counter()
    body = {
        "flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}},
        "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    with get_client(sync_client=True) as client:
        while n and time.perf_counter() - started < timeout:
            response = client.request("POST", "/task_runs/count", json=body)
            response.raise_for_status()
            if response.json() >= n:
                break
            time.sleep(SETTLE_POLL)
        else:
            if n:
                raise RuntimeError(f"the server did not record {n} task runs in {timeout} s")
    waited = time.perf_counter() - started
    time.sleep(SETTLE_GRACE)
    return waited


def run_generated(flow: Any, n: int) -> Timing:
    """Seconds for one run of the generated flow, without cache reads; checks every task ran."""
    from plan2flow.flows import runtime

    with runtime.options(runtime.RunOptions(no_cache=True)):
        clock = Clock()
        state = flow(return_state=True)
        clock.called()
    summary = runtime.summary_of(state)
    if not state.is_completed() or summary is None or not summary.ok:
        raise RuntimeError(f"the generated flow did not complete: {state.message}")
    if summary.counts() != {"Completed": n}:
        raise RuntimeError(f"the generated flow's tasks: {summary.counts()}, expected {n} run")
    return clock.timing(state, n)


def run_plain(flow: Any, n: int) -> Timing:
    """Seconds for one run of a hand-written (or the empty) flow; checks every task completed."""
    clock = Clock()
    state = flow(return_state=True)
    clock.called()
    if not state.is_completed() or state.result() != n:
        raise RuntimeError(f"{flow.name} did not complete all {n} tasks: {state.message}")
    return clock.timing(state, n)


def build_runners(
    n: int, directory: Path, max_workers: int, variants: Sequence[str] = VARIANTS
) -> tuple[dict[str, Callable[[], Timing]], dict[str, Any]]:
    """A function that runs and times one flow, for each of `variants`; the graph document."""
    flow, document = build_generated(directory, plan_text(n, max_workers))
    dag = dag_of(document)
    makers: dict[str, Callable[[], Callable[[], Timing]]] = {
        "generated": lambda: lambda: run_generated(flow, n),
        "handwritten": lambda: functools.partial(
            run_plain, handwritten_flow(dag, max_workers, persist=True), n
        ),
        "bare": lambda: functools.partial(
            run_plain, handwritten_flow(dag, max_workers, persist=False), n
        ),
        "empty": lambda: functools.partial(run_plain, empty_flow(max_workers), 0),
    }
    return {name: makers[name]() for name in variants}, document


def timed(runner: Callable[[], Timing]) -> Timing:
    gc.collect()  # untimed: garbage of the previous run is not collected during the next
    return runner()


KINDS = ("wall", "body", "cpu", "cpu_after", "server_cpu")


def measure(
    n: int,
    rounds: int = 3,
    *,
    directory: Path,
    max_workers: int = 10,
    after_warmup: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Warm up, then time each variant `rounds` times, alternating; the figures as a dict."""
    from prefect.settings import PREFECT_API_URL

    runners, document = build_runners(n, directory, max_workers)
    started = time.perf_counter()
    warmup = {name: round(runners[name]().wall, 3) for name in VARIANTS}
    warmup["total"] = round(time.perf_counter() - started, 3)
    after_warmup()
    runs: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
    for round_index in range(rounds):
        order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
        for name in order:
            runs[name].append(timed(runners[name]))
    report: dict[str, Any] = {
        "n": n,
        "edges": len(document["edges"]),
        "max_workers": max_workers,
        "rounds": rounds,
        "api": PREFECT_API_URL.value() or "ephemeral",
        "goal_ratio_max": 1.10,
    }
    for kind in KINDS:
        values = {name: [getattr(run, kind) for run in runs[name]] for name in VARIANTS}
        report[kind] = summarize(values, n)
    report["settle_median_seconds"] = {
        name: round(statistics.median(run.settle for run in runs[name]), 3) for name in VARIANTS
    }
    report["warmup_wall_seconds"] = warmup
    return report


def summarize(values: dict[str, list[float]], n: int) -> dict[str, Any]:
    """Medians, per-task milliseconds and ratios of one kind of timing (wall, body, cpu, ...)."""
    median = {name: statistics.median(seconds) for name, seconds in values.items()}
    fixed = median["empty"]
    tasks = ("generated", "handwritten", "bare")
    return {
        "median_seconds": {name: round(value, 3) for name, value in median.items()},
        "ms_per_task": {name: round(median[name] / n * 1000, 2) for name in tasks},
        "marginal_ms_per_task": {
            name: round((median[name] - fixed) / n * 1000, 2) for name in tasks
        },
        # None where the base is zero: no server CPU is seen when the API is no child process.
        "ratio": _ratio(median["generated"], median["handwritten"]),
        "ratio_marginal": _ratio(median["generated"] - fixed, median["handwritten"] - fixed),
        "ratio_vs_bare": _ratio(median["generated"], median["bare"]),
        "seconds": {name: [round(v, 3) for v in seconds] for name, seconds in values.items()},
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator > 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, help="number of tasks in the DAG")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default: 3)")
    parser.add_argument("--workers", type=int, default=10, help="max_parallelism (default: 10)")
    parser.add_argument(
        "--observability",
        type=_modes,
        default=("default",),
        help="off: no metrics registry, plain logs, no traces; untraced: ECS logs and metrics; "
        "on: ECS logs, metrics and OTLP traces to a sink process on 127.0.0.1; default: as "
        "the environment says (default); several, comma-separated (off,untraced,on): compare "
        "them, one process per mode, rounds interleaved",
    )
    parser.add_argument(
        "--variants",
        type=_variants,
        default=("generated", "handwritten"),
        help="the flows each mode's process times when comparing modes (default: "
        "generated,handwritten)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="PREFECT_LOGGING_LEVEL (default: WARNING; INFO ships run logs to the API)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Linux, 2 CPUs or more: the flows' processes on the last CPU, their servers and "
        "everything else this starts on the others",
    )
    parser.add_argument("--child", choices=OBSERVABILITY, help=argparse.SUPPRESS)
    parser.add_argument("--flow-cpu", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--otlp-endpoint", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("N, --rounds and --workers must be at least 1")
    if args.child:
        return serve_rounds(args)
    pinned: dict[str, Any] = {}
    if args.pin:
        try:
            args.flow_cpu, others = split_cpus()
        except OSError as error:
            parser.error(f"--pin: {error}")
        pin_threads(others)  # what this process starts inherits it: children, servers, sink
        pinned = {"pinned": {"flow_cpu": args.flow_cpu, "other_cpus": sorted(others)}}
    if len(args.observability) > 1:
        report = compare_modes(args) | pinned
        print(json.dumps(report))
        return 0
    home = temporary_home("p2f-bench-run-")
    configure_environment(home, args.log_level)
    observe(args.observability[0])
    report = measure(
        args.n,
        args.rounds,
        directory=home / "build",
        max_workers=args.workers,
        after_warmup=lambda: pin_threads({args.flow_cpu}) if args.pin else None,
    )
    report = {
        "python": sys.version.split()[0],
        "prefect": _prefect_version(),
        "log_level": args.log_level,
        "observability": args.observability[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **pinned,
        **report,
    }
    print(json.dumps(report))
    return 0


def split_cpus() -> tuple[int, set[int]]:
    """The CPU for the flows' processes (the last this process may use) and the others."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise OSError(f"needs 2 CPUs or more, this process may use {len(allowed)}")
    return allowed[-1], set(allowed[:-1])


def pin_threads(cpus: set[int]) -> None:
    """Every thread of this process on `cpus`; threads and processes started afterwards inherit
    it. A flow's threads take turns holding the interpreter: kept on one CPU, their hand-overs
    cost the same in every run, where threads moved between CPUs by other load (the server
    recording the run) cost more or less from run to run."""
    for thread_id in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(thread_id), cpus)


OBSERVABILITY = ("default", "off", "untraced", "on")
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    wrong = [m for m in modes if m not in OBSERVABILITY]
    if not modes or wrong:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(OBSERVABILITY)}: not {text!r}")
    return modes


def _variants(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names or any(v not in VARIANTS for v in names):
        raise argparse.ArgumentTypeError(f"variants are {', '.join(VARIANTS)}: not {text!r}")
    return names


# --- several observability modes, one process each, rounds interleaved -----------------------


def serve_rounds(args: argparse.Namespace) -> int:
    """A mode's process: warm every variant up, then run one on each line naming it on stdin,
    answering one JSON line per run on the original stdout (anything else printed goes to
    stderr); ends at the end of stdin."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # exit handlers stop the server
    home = temporary_home("p2f-bench-run-")
    configure_environment(home, args.log_level)
    observe(args.child, args.otlp_endpoint)
    runners, _ = build_runners(args.n, home / "build", args.workers, args.variants)
    warmup = {name: round(runner().wall, 3) for name, runner in runners.items()}
    if args.flow_cpu >= 0:  # the server started with the first run: it stays on the others
        pin_threads({args.flow_cpu})
    answers.write(json.dumps({"warmup_wall_seconds": warmup, "prefect": _prefect_version()}))
    answers.write("\n")
    for line in sys.stdin:
        timing = timed(runners[line.strip()])
        answers.write(json.dumps(dataclasses.asdict(timing)) + "\n")
    return 0


class ModeProcess:
    """A child process timing the variants under one observability mode."""

    def __init__(self, mode: str, args: argparse.Namespace, endpoint: str) -> None:
        command = [sys.executable, __file__, str(args.n), "--child", mode]
        command += ["--workers", str(args.workers), "--log-level", args.log_level]
        command += ["--variants", ",".join(args.variants), "--otlp-endpoint", endpoint]
        command += ["--flow-cpu", str(args.flow_cpu)]
        self.mode = mode
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.mode} process ended ({self.process.wait()})")
        return dict(json.loads(line))

    def run(self, variant: str) -> Timing:
        assert self.process.stdin is not None
        self.process.stdin.write(variant + "\n")
        self.process.stdin.flush()
        return Timing(**self.answer())

    def close(self) -> None:
        """End the process (its exit handlers stop its ephemeral server)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=30)


def compare_modes(args: argparse.Namespace) -> dict[str, Any]:
    """Time the variants in each mode's process, the modes' order rotating every round."""
    modes: tuple[str, ...] = args.observability
    endpoint = start_sink() if "on" in modes else ""
    load = [os.getloadavg()]
    processes: dict[str, ModeProcess] = {}
    ready: dict[str, dict[str, Any]] = {}
    try:
        for mode in modes:  # one after the other: each starts a server and warms up
            processes[mode] = ModeProcess(mode, args, endpoint)
            ready[mode] = processes[mode].answer()
        runs: dict[str, dict[str, list[Timing]]] = {
            mode: {v: [] for v in args.variants} for mode in modes
        }
        for index in range(args.rounds):
            load.append(os.getloadavg())
            shift = index % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                variants = args.variants if index % 2 == 0 else args.variants[::-1]
                for variant in variants:
                    timing = processes[mode].run(variant)
                    runs[mode][variant].append(timing)
                    progress = {"round": index, "mode": mode, "variant": variant}
                    progress |= {k: round(v, 3) for k, v in dataclasses.asdict(timing).items()}
                    progress["load"] = round(os.getloadavg()[0], 2)
                    print(json.dumps(progress), file=sys.stderr, flush=True)
        load.append(os.getloadavg())
    finally:
        for process in processes.values():
            process.close()
    return {
        "python": sys.version.split()[0],
        "prefect": next(iter(ready.values()))["prefect"],
        "log_level": args.log_level,
        "n": args.n,
        "max_workers": args.workers,
        "rounds": args.rounds,
        "modes": list(modes),
        "variants": list(args.variants),
        "load_average_1min": _spread([one for one, _, _ in load]),
        "goal_ratio_max": {"on/off": 1.05, "generated/handwritten": 1.10},
        **mode_figures(runs, modes[0], args.n),
        "warmup_wall_seconds": {mode: ready[mode]["warmup_wall_seconds"] for mode in modes},
    }


def mode_figures(
    runs: dict[str, dict[str, list[Timing]]], base: str, n: int
) -> dict[str, dict[str, Any]]:
    """Per mode and variant, each kind's spread (median, quartiles, min, max, every round);
    each other mode against `base`: the ratio of the medians, and the median of the rounds'
    ratios (round i of a mode against round i of `base`, run minutes apart); per mode, the
    generated / handwritten ratio of the medians and ms per task."""
    kinds = (*KINDS, "cpu_all")

    def values(mode: str, variant: str, kind: str) -> list[float]:
        if kind == "cpu_all":
            return [t.cpu + t.cpu_after + t.server_cpu for t in runs[mode][variant]]
        return [getattr(t, kind) for t in runs[mode][variant]]

    figures: dict[str, dict[str, Any]] = {"seconds": {}, "ratio_to_" + base: {}}
    for mode, by_variant in runs.items():
        figures["seconds"][mode] = {
            variant: {
                **{kind: _spread(values(mode, variant, kind)) for kind in kinds},
                "settle_median": round(statistics.median(t.settle for t in timings), 3),
            }
            for variant, timings in by_variant.items()
        }
        if mode != base:
            figures["ratio_to_" + base][mode] = {
                variant: {
                    kind: _ratios(values(mode, variant, kind), values(base, variant, kind))
                    for kind in kinds
                }
                for variant in by_variant
            }
    if {"generated", "handwritten"} <= set(next(iter(runs.values()))):
        figures["generated/handwritten"] = {
            mode: {
                kind: {
                    **_ratios(values(mode, "generated", kind), values(mode, "handwritten", kind)),
                    "extra_ms_per_task": round(
                        (
                            statistics.median(values(mode, "generated", kind))
                            - statistics.median(values(mode, "handwritten", kind))
                        )
                        / n
                        * 1000,
                        2,
                    ),
                }
                for kind in kinds
            }
            for mode in runs
        }
    return figures


def _spread(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
    return {
        "median": round(statistics.median(ordered), 3),
        "q1": round(quartiles[0], 3),
        "q3": round(quartiles[2], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "all": [round(v, 3) for v in values],
    }


def _ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    rounds = [a / b for a, b in zip(numerators, denominators, strict=True) if b > 0]
    return {
        "of_medians": _ratio(statistics.median(numerators), statistics.median(denominators)),
        "of_minima": _ratio(min(numerators), min(denominators)),
        "median_of_rounds": round(statistics.median(rounds), 3) if rounds else None,
        "median_of_rounds_ci95": median_interval(rounds),
        "rounds_min": round(min(rounds), 3) if rounds else None,
        "rounds_max": round(max(rounds), 3) if rounds else None,
    }


def median_interval(values: Sequence[float], confidence: float = 0.95) -> list[float] | None:
    """A distribution-free confidence interval of the median: the k-th smallest and k-th
    largest values, k the largest for which the interval still holds the median with at least
    `confidence` (each value is below the median with probability 1/2). None with too few
    values (fewer than 6 for 95 %)."""
    ordered, n = sorted(values), len(values)
    k = 0
    while k + 1 <= n // 2:
        outside = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        if 1 - outside < confidence:
            break
        k += 1
    if k == 0:
        return None
    return [round(ordered[k - 1], 3), round(ordered[n - k], 3)]


_SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_sink() -> str:
    """An OTLP/HTTP receiver in a process of its own, as a collector would be: its URL."""
    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    atexit.register(sink.kill)
    _NOT_SERVERS.add(str(sink.pid))
    assert sink.stdout is not None
    return f"http://127.0.0.1:{sink.stdout.readline().strip()}"


def observe(mode: str, endpoint: str = "") -> None:
    """Set the observability settings of this process (before the runtime is imported)."""
    if mode == "default":
        return
    for name in ("PLAN2FLOW_LOG_FORMAT", "PLAN2FLOW_METRICS", *ENDPOINT_ENVS):
        os.environ.pop(name, None)
    if mode == "off":
        os.environ["PLAN2FLOW_METRICS"] = "off"
        return
    os.environ["PLAN2FLOW_LOG_FORMAT"] = "ecs"
    if mode == "on":
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint or start_sink()


def _prefect_version() -> str:
    import prefect

    return str(prefect.__version__)


if __name__ == "__main__":
    sys.exit(main())
