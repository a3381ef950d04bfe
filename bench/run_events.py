"""What events cost per task run: a generated flow with the bus off, in-process, and on NATS.

Usage::

    python bench/run_events.py N [--rounds R] [--workers W] [--url nats://127.0.0.1:4222 [--wait]]

The plan is the layered plan of ``bench/run_overhead.py`` (N ``noop`` tasks, seed 42,
``max_parallelism`` W, 10 by default), run as ``plan2flow run --no-cache`` runs it. Three
variants of the same generated flow, in one process, alternately, R rounds (3 by default), after
one untimed warm-up run of each:

* ``off``: ``PLAN2FLOW_EVENTS=off`` (nothing built, nothing published): the baseline;
* ``memory``: the in-process bus (the default), with one subscriber (``plan2flow.>``) whose
  handler counts the events in a thread of its own;
* ``nats`` (only with ``--url``): NATS JetStream, private streams (deleted at the end), acks
  checked in the background (the default) and ``flush()`` at the end of the run, as the runtime
  does;
* ``nats_wait`` (with ``--url`` and ``--wait``): the same with ``PLAN2FLOW_EVENTS_ACKS=wait``,
  each publish waiting for its ack.

Each task run publishes ``task.started`` and ``task.completed`` (a ``noop`` task has no
artifact), the run ``flow.started`` and ``flow.completed``: 2 N + 2 events, checked. The Prefect
bridge (``emit_event``) and the JSON log lines are there in every variant.

Reported (one JSON line), under ``wall`` and ``body`` as in ``bench/run_overhead.py`` (``body``
leaves out the end of the heartbeat thread; it is the stable figure): the median seconds of each
variant, milliseconds per task, and each variant's overhead against ``off``: microseconds per
task and percent of the run (the issue's budget is at most 5 %). Every run is followed, untimed,
by a wait until the server has recorded all its task runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
BUDGET_PERCENT = 5.0


def _run_overhead() -> ModuleType:
    name = "plan2flow_bench_run_overhead"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "run_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


NATS_VARIABLES = (
    ("PLAN2FLOW_EVENTS_ROOT", "root"),
    ("PLAN2FLOW_EVENTS_STREAM", "stream"),
    ("PLAN2FLOW_EVENTS_DLQ_STREAM", "dlq_stream"),
    ("PLAN2FLOW_EVENTS_ADVISORY_STREAM", "advisory_stream"),
)


def private_streams(url: str) -> dict[str, str]:
    """Environment for streams and a subject root of this benchmark's own."""
    tag = uuid.uuid4().hex[:10]
    names = {"root": f"b{tag}", "stream": f"BEV_{tag}", "dlq_stream": f"BDLQ_{tag}"}
    names["advisory_stream"] = f"BADV_{tag}"
    return {"PLAN2FLOW_EVENTS_URL": url} | {var: names[key] for var, key in NATS_VARIABLES}


def set_variant(name: str, nats_env: dict[str, str]) -> None:
    """Point ``plan2flow.events.from_env`` at the variant's bus (it reads the environment), and
    make that bus now, outside the timed run (the NATS bus of the other acks goes)."""
    from plan2flow.events import bus as bus_module
    from plan2flow.events import from_env

    for variable in ("PLAN2FLOW_EVENTS", "PLAN2FLOW_EVENTS_ACKS", *nats_env):
        os.environ.pop(variable, None)
    if name == "off":
        os.environ["PLAN2FLOW_EVENTS"] = "off"
    elif name in NATS_VARIANTS:
        os.environ.update(nats_env, PLAN2FLOW_EVENTS_ACKS=NATS_VARIANTS[name])
        url = nats_env["PLAN2FLOW_EVENTS_URL"]
        made = bus_module._NATS_BUSES.get(url)
        if made is not None and made.stats()["acks"] != NATS_VARIANTS[name]:
            bus_module._NATS_BUSES.pop(url).close()
    from_env()


NATS_VARIANTS = {"nats": "background", "nats_wait": "wait"}


def delete_streams(nats_env: dict[str, str]) -> None:
    from plan2flow.events import bus as bus_module
    from plan2flow.events.admin import _run
    from plan2flow.events.jetstream import NatsSettings

    settings = NatsSettings.from_env(nats_env)
    bus = bus_module._NATS_BUSES.pop(nats_env["PLAN2FLOW_EVENTS_URL"], None)
    if bus is not None:
        bus.close()

    async def work(js: Any) -> None:
        for name in (settings.stream, settings.dlq_stream, settings.advisory_stream):
            try:
                await js.delete_stream(name)
            except Exception:  # already gone
                continue

    _run(settings, work)


def measure(
    n: int,
    rounds: int = 3,
    *,
    directory: Path,
    max_workers: int = 10,
    url: str | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Warm up, then time each variant `rounds` times, alternating; the figures as a dict."""
    from plan2flow.events import process_bus

    overhead = _run_overhead()
    flow, _ = overhead.build_generated(directory, overhead.plan_text(n, max_workers))
    variants: tuple[str, ...] = ("off", "memory")
    if url:
        variants += ("nats", "nats_wait") if wait else ("nats",)
    nats_env = private_streams(url) if url else {}
    counted = [0]
    lock = threading.Lock()

    def count(_event: Any) -> None:
        with lock:
            counted[0] += 1

    subscription = process_bus().subscribe("plan2flow.>", count, max_pending=4 * n + 16)

    def timed(name: str) -> Callable[[], Any]:
        def run() -> Any:
            set_variant(name, nats_env)
            before = subscription.delivered
            timing = overhead.run_generated(flow, n)
            if name == "memory" and not subscription.wait_handled(before + 2 * n + 2, 60):
                raise RuntimeError("the subscriber did not receive every event of the run")
            return timing

        return run

    runners = {name: timed(name) for name in variants}
    try:
        for name in variants:
            runners[name]()
        runs: dict[str, list[Any]] = {name: [] for name in variants}
        for index in range(rounds):
            order = variants if index % 2 == 0 else tuple(reversed(variants))
            for name in order:
                gc.collect()
                runs[name].append(runners[name]())
        stored = _stored(nats_env) if url else None
    finally:
        subscription.close()
        set_variant("memory", nats_env)
        if url:
            delete_streams(nats_env)
    report: dict[str, Any] = {
        "n": n,
        "max_workers": max_workers,
        "rounds": rounds,
        "events_per_run": 2 * n + 2,
        "budget_percent": BUDGET_PERCENT,
    }
    if stored is not None:
        expected = (rounds + 1) * (2 * n + 2) * (len(variants) - 2)
        if stored != expected:
            raise RuntimeError(f"the stream holds {stored} events, the runs published {expected}")
        report["nats_stored"] = stored
    for kind in ("wall", "body"):
        medians = {
            name: statistics.median(getattr(run, kind) for run in runs[name]) for name in variants
        }
        base = medians["off"]
        report[kind] = {
            "median_seconds": {name: round(value, 3) for name, value in medians.items()},
            "ms_per_task": {name: round(value / n * 1000, 3) for name, value in medians.items()},
            "overhead_us_per_task": {
                name: round((medians[name] - base) / n * 1e6, 1) for name in variants[1:]
            },
            "overhead_percent": {
                name: round((medians[name] - base) / base * 100, 2) for name in variants[1:]
            },
            "seconds": {
                name: [round(getattr(run, kind), 3) for run in runs[name]] for name in variants
            },
        }
    return report


def _stored(nats_env: dict[str, str]) -> int:
    """How many events the private stream holds."""
    from plan2flow.events.admin import stats
    from plan2flow.events.jetstream import NatsSettings

    return int(stats(NatsSettings.from_env(nats_env))["stream"]["messages"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("n", type=int, help="number of tasks in the DAG")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default: 3)")
    parser.add_argument("--workers", type=int, default=10, help="max_parallelism (default: 10)")
    parser.add_argument("--url", default=None, help="a NATS server with JetStream")
    parser.add_argument(
        "--wait", action="store_true", help="with --url, also NATS with each publish waiting"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("N, --rounds and --workers must be at least 1")
    overhead = _run_overhead()
    home = overhead.temporary_home("p2f-bench-events-")
    overhead.configure_environment(home)
    report = measure(
        args.n,
        args.rounds,
        directory=home / "build",
        max_workers=args.workers,
        url=args.url,
        wait=args.wait,
    )
    report = {"python": sys.version.split()[0], "prefect": overhead._prefect_version(), **report}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
