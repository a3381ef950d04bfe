"""Run-time overhead benchmark: a generated plan2flow flow against the same DAG in plain Prefect.

Usage::

    python bench/run_overhead.py N [--rounds R] [--workers W] [--log-level LEVEL]

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
upstream tasks against the graph, passes upstream results as ``allow_failure`` futures (resolved
as parameters instead of ``wait_for``), computes its own cache key (JSON + SHA-256), creates an
artifact directory, a ``.logs`` directory and a workspace directory, emits two extra Prefect
events (``plan2flow.task.started`` / ``completed``) and formats two JSON log lines, runs a
completion hook, and keeps a per-task record.

Reported (one JSON line), twice: under ``wall``, the seconds of the flow call as a user waits
for it; under ``body``, the seconds until the flow's final state was set, which leaves out the end
of the flow run's heartbeat thread: it sleeps in 1 s steps and is joined when the flow ends, so
wall times are rounded up to the next whole second since the flow started, and wall ratios jump
with that rounding (body ratios are the stable figure). For each: the median seconds of every
flow, milliseconds per task (median / N), marginal milliseconds per task (median minus the median
empty flow, over N), and the ratios ``generated / handwritten`` (the goal is at most 1.10) and
``generated / bare``. The server records task runs from events, in the background, after the flow
has returned; every run (warm-up included) is followed, untimed, by a wait until the server has
recorded all of its task runs as completed plus 0.5 s, so that no run pays for the previous run's
backlog; ``settle_median_seconds`` reports that wait. ``PREFECT_LOGGING_LEVEL`` is WARNING unless
``--log-level`` says otherwise, so INFO logs are neither printed nor shipped to the API;
``plan2flow run`` ships them.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import importlib.util
import json
import os
import shutil
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
    the server then still needed to record every task run as completed."""

    wall: float
    body: float
    settle: float = 0.0


SETTLE_TIMEOUT = 300.0
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
            time.sleep(0.1)
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
        wall, started = time.time(), time.perf_counter()
        state = flow(return_state=True)
        seconds = time.perf_counter() - started
    summary = runtime.summary_of(state)
    if not state.is_completed() or summary is None or not summary.ok:
        raise RuntimeError(f"the generated flow did not complete: {state.message}")
    if summary.counts() != {"Completed": n}:
        raise RuntimeError(f"the generated flow's tasks: {summary.counts()}, expected {n} run")
    return Timing(seconds, state.timestamp.timestamp() - wall, settle(state, n))


def run_plain(flow: Any, n: int) -> Timing:
    """Seconds for one run of a hand-written (or the empty) flow; checks every task completed."""
    wall, started = time.time(), time.perf_counter()
    state = flow(return_state=True)
    seconds = time.perf_counter() - started
    if not state.is_completed() or state.result() != n:
        raise RuntimeError(f"{flow.name} did not complete all {n} tasks: {state.message}")
    return Timing(seconds, state.timestamp.timestamp() - wall, settle(state, n))


def measure(n: int, rounds: int = 3, *, directory: Path, max_workers: int = 10) -> dict[str, Any]:
    """Warm up, then time each variant `rounds` times, alternating; the figures as a dict."""
    from prefect.settings import PREFECT_API_URL

    flow, document = build_generated(directory, plan_text(n, max_workers))
    dag = dag_of(document)
    handwritten = handwritten_flow(dag, max_workers, persist=True)
    bare = handwritten_flow(dag, max_workers, persist=False)
    empty = empty_flow(max_workers)
    runners: dict[str, Callable[[], Timing]] = {
        "generated": lambda: run_generated(flow, n),
        "handwritten": lambda: run_plain(handwritten, n),
        "bare": lambda: run_plain(bare, n),
        "empty": lambda: run_plain(empty, 0),
    }
    started = time.perf_counter()
    warmup = {name: round(runners[name]().wall, 3) for name in VARIANTS}
    warmup["total"] = round(time.perf_counter() - started, 3)
    runs: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
    for round_index in range(rounds):
        order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
        for name in order:
            gc.collect()  # untimed: garbage of the previous run is not collected during the next
            runs[name].append(runners[name]())
    report: dict[str, Any] = {
        "n": n,
        "edges": len(document["edges"]),
        "max_workers": max_workers,
        "rounds": rounds,
        "api": PREFECT_API_URL.value() or "ephemeral",
        "goal_ratio_max": 1.10,
    }
    for kind in ("wall", "body"):
        values = {name: [getattr(run, kind) for run in runs[name]] for name in VARIANTS}
        report[kind] = summarize(values, n)
    report["settle_median_seconds"] = {
        name: round(statistics.median(run.settle for run in runs[name]), 3) for name in VARIANTS
    }
    report["warmup_wall_seconds"] = warmup
    return report


def summarize(values: dict[str, list[float]], n: int) -> dict[str, Any]:
    """Medians, per-task milliseconds and ratios of one kind of timing (wall or body)."""
    median = {name: statistics.median(seconds) for name, seconds in values.items()}
    fixed = median["empty"]
    tasks = ("generated", "handwritten", "bare")
    return {
        "median_seconds": {name: round(value, 3) for name, value in median.items()},
        "ms_per_task": {name: round(median[name] / n * 1000, 2) for name in tasks},
        "marginal_ms_per_task": {
            name: round((median[name] - fixed) / n * 1000, 2) for name in tasks
        },
        "ratio": round(median["generated"] / median["handwritten"], 3),
        "ratio_marginal": _ratio(median["generated"] - fixed, median["handwritten"] - fixed),
        "ratio_vs_bare": round(median["generated"] / median["bare"], 3),
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
        choices=OBSERVABILITY,
        default="default",
        help="off: no metrics registry, plain logs, no traces; untraced: ECS logs and metrics; "
        "on: ECS logs, metrics and OTLP traces to a sink process on 127.0.0.1; default: as "
        "the environment says (default)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="PREFECT_LOGGING_LEVEL (default: WARNING; INFO ships run logs to the API)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("N, --rounds and --workers must be at least 1")
    home = temporary_home("p2f-bench-run-")
    configure_environment(home, args.log_level)
    observe(args.observability)
    report = measure(args.n, args.rounds, directory=home / "build", max_workers=args.workers)
    report = {
        "python": sys.version.split()[0],
        "prefect": _prefect_version(),
        "log_level": args.log_level,
        "observability": args.observability,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **report,
    }
    print(json.dumps(report))
    return 0


OBSERVABILITY = ("default", "off", "untraced", "on")
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


def observe(mode: str) -> None:
    """Set the observability settings of this process (before the runtime is imported)."""
    if mode == "default":
        return
    for name in ("PLAN2FLOW_LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "PLAN2FLOW_METRICS"):
        os.environ.pop(name, None)
    if mode == "off":
        os.environ["PLAN2FLOW_METRICS"] = "off"
        return
    os.environ["PLAN2FLOW_LOG_FORMAT"] = "ecs"
    if mode == "on":
        # An OTLP/HTTP receiver in a process of its own, as a collector would be.
        sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
        atexit.register(sink.kill)
        assert sink.stdout is not None
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = (
            f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        )


def _prefect_version() -> str:
    import prefect

    return str(prefect.__version__)


if __name__ == "__main__":
    sys.exit(main())
