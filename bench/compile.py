"""Compile-time benchmark: how long plan2flow takes to compile a large plan, and against what floor.

Usage::

    python bench/compile.py N [--repeat K] [--write PATH]

The plan is a layered DAG of N ``noop`` tasks, about sqrt(N) per layer; every task after the first
layer depends on 1 to 3 tasks of earlier layers, mostly of the previous one. A fixed seed
(``random.Random(42)``) makes the plan identical on every run. It is written as block-style YAML,
a few lines per task, the way a person writes a plan.

Measured, in one process and on the same plan text:

* ``seconds``: ``compile_plan`` on the plan's bytes (as the CLI passes them), best of K runs;
* ``floor_seconds``: what any compiler of this format must at least do, best of K runs: parse the
  YAML with libyaml (``yaml.CSafeLoader``, with the cyclic garbage collector paused as the compiler
  pauses it), dump the compiled document as canonical JSON (``render_document``) and take the
  SHA-256 of that text;
* ``ratio``: ``seconds / floor_seconds``, the compiler's overhead over that floor;
* ``peak_tracemalloc_mib``: peak memory allocated by one compile, traced by ``tracemalloc`` in a
  separate run that is not timed (tracing slows allocation down several times);
* ``max_rss_mib``: the process's resident-set high-water mark at the end (plan text, results and
  interpreter included), for reference.

Why a floor: absolute seconds depend on the machine and on whatever else runs on it; the ratio to a
floor measured in the same process, on the same plan, moments apart, depends on them much less, so
it is the figure to compare across machines and over time. The floor's parse leaves out the pass
that the collector makes over the parsed objects once it is re-enabled; the compiler's time
includes that pass. The output is one JSON line, so runs can be collected and compared.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from plan2flow.compiler import Limits, compile_plan
from plan2flow.compiler.graph.taskgraph import render_document

SEED = 42
MIB = 1024 * 1024
# Past the default limits (docs/planspec.md#limits) on purpose: this measures how the compiler
# scales, up to 100,000 tasks and beyond, not what `plan2flow validate` accepts.
LIMITS = Limits(max_bytes=1 << 30, max_tasks=10**7, max_expanded_tasks=10**7, max_edges=10**8)


def task_id(index: int, digits: int) -> str:
    return f"t{index:0{digits}d}"


def build_plan(n: int, seed: int = SEED) -> str:
    """The YAML text of a layered plan of `n` noop tasks; the same text for the same arguments."""
    if n < 1:
        raise ValueError("a plan needs at least one task")
    rng = random.Random(seed)
    width = max(1, round(math.sqrt(n)))
    digits = max(5, len(str(n - 1)))
    lines = [
        "apiVersion: plan2flow/v1",
        "kind: Plan",
        "metadata:",
        f"  name: bench-{n}",
        f"  description: Layered benchmark plan of {n} noop tasks, {width} per layer.",
        "tasks:",
    ]
    for index in range(n):
        layer = index // width
        lines.append(f"  - id: {task_id(index, digits)}")
        lines.append("    type: noop")
        if layer == 0:
            continue
        previous = range((layer - 1) * width, layer * width)
        upstream: set[int] = set()
        for _ in range(rng.randint(1, 3)):
            if layer == 1 or rng.random() < 0.8:
                upstream.add(rng.choice(previous))
            else:
                upstream.add(rng.randrange(0, (layer - 1) * width))
        refs = ", ".join(task_id(up, digits) for up in sorted(upstream))
        lines.append(f"    depends_on: [{refs}]")
    return "\n".join(lines) + "\n"


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The shortest of `repeat` wall-clock times of `run()`, and the value of its last call."""
    best, value = math.inf, None
    for _ in range(repeat):
        value = None
        gc.collect()  # untimed: no garbage of the previous run is collected during the next
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def _parse_paused(text: str) -> Any:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    finally:
        if enabled:
            gc.enable()


def _time_compile(data: bytes, repeat: int) -> tuple[float, dict[str, float], Any]:
    """Best-of-`repeat` time of `compile_plan`, the stage times of that run, and a result."""
    seconds, stages, result = math.inf, {}, None
    for _ in range(repeat):
        result = None
        gc.collect()
        run: dict[str, float] = {}
        started = time.perf_counter()
        result = compile_plan(data, "plan.yaml", limits=LIMITS, observe=run.__setitem__)
        took = time.perf_counter() - started
        if took < seconds:
            seconds, stages = took, run
    return seconds, stages, result


def _time_floor(text: str, document: dict[str, Any], repeat: int) -> dict[str, float]:
    """Best-of-`repeat` times of the floor's three parts on the same plan and document."""
    parse, parsed = _best(lambda: _parse_paused(text), repeat)
    assert len(parsed["tasks"]) == len(document["tasks"])
    render, rendered = _best(lambda: render_document(document), repeat)
    digest, _ = _best(lambda: hashlib.sha256(rendered.encode("utf-8")).hexdigest(), repeat)
    return {"parse": parse, "render": render, "hash": digest}


def _peak_memory(data: bytes) -> int:
    """Peak bytes traced while compiling once (untimed: tracing slows allocation down)."""
    gc.collect()
    tracemalloc.start()
    try:
        compile_plan(data, "plan.yaml", limits=LIMITS)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.collect()


def measure(text: str, repeat: int) -> dict[str, Any]:
    """Time `compile_plan` and the floor on `text`; measure one compile's peak memory."""
    data = text.encode("utf-8")
    seconds, stages, result = _time_compile(data, repeat)
    document = result.graph.document
    tasks, edges = len(document["tasks"]), len(document["edges"])
    floor = _time_floor(text, document, repeat)
    floor_seconds = sum(floor.values())
    del result, document
    peak = _peak_memory(data)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "tasks": tasks,
        "edges": edges,
        "bytes": len(data),
        "repeat": repeat,
        "seconds": round(seconds, 4),
        "floor_seconds": round(floor_seconds, 4),
        "ratio": round(seconds / floor_seconds, 2),
        **{f"floor_{part}_seconds": round(value, 4) for part, value in floor.items()},
        "stage_seconds": {name: round(value, 4) for name, value in stages.items()},
        "peak_tracemalloc_mib": round(peak / MIB, 1),
        "max_rss_mib": round(max_rss / MIB, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("n", type=int, help="number of tasks in the plan")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed runs, the best one counts (default: 3 up to 20,000 tasks, 1 above)",
    )
    parser.add_argument("--write", type=Path, help="also write the plan's YAML to this file")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("N must be at least 1")
    repeat = args.repeat if args.repeat is not None else (3 if args.n <= 20_000 else 1)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    text = build_plan(args.n)
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
    report = {
        "n": args.n,
        "python": sys.version.split()[0],
        "yaml_libyaml": yaml.__with_libyaml__,
        **measure(text, repeat),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
