"""Parallelism benchmark: do independent plan tasks really run at the same time?

Usage::

    python bench/parallel.py [--tasks 160] [--sleep 0.25] [--workers 16] [--kind python|shell]
                             [--rounds R]

The plan has N independent tasks (160 by default) that each sleep S seconds (0.25 by default):
``type: python`` tasks calling ``bench_sleep:sleep`` (``time.sleep`` itself takes no keyword
argument), or with ``--kind shell``, ``sleep S`` as a subprocess. The generated flow is run in one
process with ``flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=K))`` for K = 1
and K = W (16 by default), as ``plan2flow run --max-parallel K`` does, with
``RunOptions(no_cache=True)`` (both runs use the same plan, so the second one would otherwise be
served from the cache). An untimed warm-up run with W workers comes first (the first flow of a
process starts Prefect's ephemeral server), and every run starts once the server has recorded the
previous one's task runs (see ``bench/run_overhead.py``). With R rounds the order alternates and
medians are reported.

Reported (one JSON line): seconds with 1 and with W workers (wall time of the flow call, and
``body``: until the flow's final state was set, without the up-to-1-s heartbeat join), the
``speedup`` (1-worker over W-worker seconds, the goal being at least 10), the ideal times
(N x S, and ceil(N / W) x S) and the ideal speedup, and the overhead per task of the serial run
((seconds - N x S) / N).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent


def _run_overhead() -> ModuleType:
    """bench/run_overhead.py, imported by path (bench/ is not a package)."""
    name = "plan2flow_bench_run_overhead"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "run_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ensure_importable() -> None:
    """Let ``type: python`` tasks import ``bench_sleep`` (they run in this process)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))


def plan_text(tasks: int, sleep: float, workers: int, kind: str = "python") -> str:
    """N independent tasks that each sleep `sleep` seconds."""
    if kind == "python":
        call = f'callable: "bench_sleep:sleep", kwargs: {{seconds: {sleep}}}'
        body = f"type: python, params: {{{call}}}"
    elif kind == "shell":
        body = f'type: shell, params: {{argv: [sleep, "{sleep}"]}}'
    else:
        raise ValueError(f"unknown task kind {kind!r}")
    lines = [
        "apiVersion: plan2flow/v1",
        "kind: Plan",
        "metadata:",
        f"  name: parallel-{tasks}",
        f"  description: {tasks} independent tasks that each sleep {sleep} s.",
        "defaults:",
        f"  max_parallelism: {workers}",
        "tasks:",
    ]
    lines += [f"  - {{id: s{index:03d}, {body}}}" for index in range(tasks)]
    return "\n".join(lines) + "\n"


def measure(
    tasks: int = 160,
    sleep: float = 0.25,
    *,
    directory: Path,
    workers: int = 16,
    kind: str = "python",
    rounds: int = 1,
) -> dict[str, Any]:
    """Warm up, then time the plan with 1 and with `workers` workers; the figures as a dict."""
    from prefect.settings import PREFECT_API_URL
    from prefect.task_runners import ThreadPoolTaskRunner

    overhead = _run_overhead()
    ensure_importable()
    flow, _ = overhead.build_generated(directory, plan_text(tasks, sleep, workers, kind))
    flows = {
        count: flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=count))
        for count in (1, workers)
    }
    started = time.perf_counter()
    warmup = overhead.run_generated(flows[workers], tasks)
    warmup_seconds = time.perf_counter() - started
    runs: dict[int, list[Any]] = {1: [], workers: []}
    for round_index in range(rounds):
        order = (workers, 1) if round_index % 2 == 0 else (1, workers)
        for count in order:
            runs[count].append(overhead.run_generated(flows[count], tasks))
    serial_ideal = tasks * sleep
    parallel_ideal = math.ceil(tasks / workers) * sleep
    report: dict[str, Any] = {
        "tasks": tasks,
        "sleep": sleep,
        "kind": kind,
        "workers": workers,
        "rounds": rounds,
        "api": PREFECT_API_URL.value() or "ephemeral",
        "goal_speedup_min": 10,
        "ideal_seconds": {"1": round(serial_ideal, 3), str(workers): round(parallel_ideal, 3)},
        "ideal_speedup": round(serial_ideal / parallel_ideal, 2),
    }
    for kind_of_time in ("wall", "body"):
        median = {
            count: statistics.median(getattr(run, kind_of_time) for run in values)
            for count, values in runs.items()
        }
        report[kind_of_time] = {
            "seconds": {str(count): round(value, 3) for count, value in median.items()},
            "speedup": round(median[1] / median[workers], 2),
            "serial_overhead_ms_per_task": round((median[1] - serial_ideal) / tasks * 1000, 2),
            "parallel_over_ideal_seconds": round(median[workers] - parallel_ideal, 3),
            "runs": {
                str(count): [round(getattr(run, kind_of_time), 3) for run in values]
                for count, values in runs.items()
            },
        }
    report["settle_median_seconds"] = {
        str(count): round(statistics.median(run.settle for run in values), 3)
        for count, values in runs.items()
    }
    report["warmup_wall_seconds"] = round(warmup_seconds, 3)
    report["warmup_first_flow_wall_seconds"] = round(warmup.wall, 3)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=160, help="independent tasks (default: 160)")
    parser.add_argument("--sleep", type=float, default=0.25, help="seconds each (default: 0.25)")
    parser.add_argument("--workers", type=int, default=16, help="parallel workers (default: 16)")
    parser.add_argument(
        "--kind",
        choices=("python", "shell"),
        default="python",
        help="python: call bench_sleep:sleep in the flow process (default); shell: run `sleep`",
    )
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds (default: 1)")
    parser.add_argument(
        "--log-level", default="WARNING", help="PREFECT_LOGGING_LEVEL (default: WARNING)"
    )
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.workers < 1 or args.rounds < 1 or args.sleep < 0:
        parser.error("--tasks, --workers and --rounds must be at least 1, --sleep at least 0")
    overhead = _run_overhead()
    home = overhead.temporary_home("p2f-bench-parallel-")
    overhead.configure_environment(home, args.log_level)
    report = measure(
        args.tasks,
        args.sleep,
        directory=home / "build",
        workers=args.workers,
        kind=args.kind,
        rounds=args.rounds,
    )
    print(json.dumps({"python": sys.version.split()[0], "log_level": args.log_level, **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
