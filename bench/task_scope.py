"""The per-task cost of observability alone: ``task_scope`` around an empty body, per mode.

Usage::

    python bench/task_scope.py [N] [--rounds R]

Every task of a generated flow runs inside :func:`plan2flow.flows.observing.task_scope` (its log
ids, its span). This times N scopes (5,000 by default) of one flow run whose span is open, R
rounds (5 by default) per mode, each mode in a process of its own (tracing is decided once per
process), the modes alternating round by round:

* ``off``: no ``OTEL_EXPORTER_OTLP_ENDPOINT``: log ids only, the baseline;
* ``memory``: spans to the SDK's in-memory exporter (the span itself, no export);
* ``otlp``: spans batched and sent by OTLP/HTTP, as ``on`` sends them, to a sink on 127.0.0.1
  in the same process that reads each request and answers 200 (its CPU is counted: the
  exporter's encoding and the HTTP round trip are the cost of export).

Reported (one JSON line): per mode, the median CPU microseconds per task (user + system, every
thread of the process, the final flush of the spans included) and the rounds' values; and
each mode's median minus ``off``'s. A Prefect run of a 1,000-task plan spends about 10 ms of the
flow process's CPU per task (bench/run_overhead.py), so 100 µs there is 1 %.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

MODES = ("off", "memory", "otlp")
WARM_UP = 200


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that takes every request and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _measure(mode: str, n: int) -> float:
    """CPU microseconds per scope in this process, set up for `mode`."""
    if mode == "otlp":
        sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_address[1]}"
    else:
        os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    from plan2flow.flows import observing
    from plan2flow.flows.workspace import RunPlace
    from plan2flow.observability import tracing

    if mode == "memory":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        tracing.use_exporter(InMemorySpanExporter())
    place = RunPlace(
        plan="bench",
        graph_hash="0" * 64,
        flow_run_id="00000000-0000-4000-8000-000000000000",
        workspace=os.devnull,
        artifact_root=os.devnull,
    )
    observing.run_began(place, {})
    for index in range(WARM_UP):
        with observing.task_scope(place, f"warm-{index}", "noop", 1):
            pass
    tracing.flush(30)
    began = time.process_time()
    for index in range(n):
        with observing.task_scope(place, f"task-{index}", "noop", 1):
            pass
    tracing.flush(30)
    spent = time.process_time() - began
    observing.run_ended(place)
    return spent / n * 1e6


def _child(mode: str, n: int) -> float:
    done = subprocess.run(
        [sys.executable, __file__, str(n), "--child", mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, nargs="?", default=5000, help="scopes per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode (default: 5)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("N and --rounds must be at least 1")
    if args.child:
        print(f"{_measure(args.child, args.n):.3f}")
        return 0
    rounds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for index in range(args.rounds):
        order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
        for mode in order:
            rounds[mode].append(_child(mode, args.n))
    medians = {mode: statistics.median(values) for mode, values in rounds.items()}
    report = {
        "n": args.n,
        "rounds": args.rounds,
        "us_per_task": {mode: round(value, 1) for mode, value in medians.items()},
        "us_per_task_rounds": {m: [round(v, 1) for v in values] for m, values in rounds.items()},
        "us_over_off": {mode: round(medians[mode] - medians["off"], 1) for mode in MODES},
    }
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
