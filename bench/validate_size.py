"""What `plan2flow validate` costs per MB of plan: seconds and peak memory, by size and format.

Usage::

    python bench/validate_size.py [MB ...] [--formats human,json,sarif] [--shapes tasks,errors]
                                  [--json]

For each size (default 1, 2 and 4 MB) and shape, a plan of about that many bytes is written to a
temporary directory, and ``plan2flow validate --format F PLAN`` runs on it as a separate process,
as a user or a pre-commit hook runs it, for each format F. Measured per run:

* ``seconds``: wall-clock time of the process, start to exit;
* ``peak_mb``: the process's peak resident memory (``ru_maxrss`` from ``wait4``), in MB;
* ``out_mb``: what it printed (stdout and stderr), in MB.

The baseline is the same command on ``examples/plans/hello.yaml`` in the same run, so the figures
per MB, ``(seconds - baseline) / MB`` and ``(peak_mb - baseline) / MB``, leave out the start-up
cost (interpreter, imports) and compare across machines better than the raw figures.

Shapes: ``tasks`` is a valid layered plan of ``noop`` tasks, each depending on one to three tasks
of the layer before it (as ``bench/compile.py`` writes, a few lines per task); ``errors`` is a plan
of one-line tasks that each have an unknown field, one diagnostic per task, the most a plan of
that size can make a report print. A size beyond the byte limit measures the refusal (P2F002).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
PLAN2FLOW = str(Path(sys.executable).parent / "plan2flow")
MB = 1024 * 1024
SEED = 42
HEAD = "apiVersion: plan2flow/v1\nkind: Plan\nmetadata:\n  name: size\ntasks:\n"


def tasks_plan(size: int) -> str:
    """A valid plan of about `size` bytes: layers of noop tasks with 1-3 upstream tasks each."""
    rng = random.Random(SEED)
    lines, total, index, width = [HEAD], len(HEAD), 0, 100
    while total < size:
        text = f"  - id: t{index:07d}\n    type: noop\n"
        if index >= width:
            layer = index // width
            ups = {
                rng.randrange((layer - 1) * width, layer * width) for _ in range(rng.randint(1, 3))
            }
            text += f"    depends_on: [{', '.join(f't{up:07d}' for up in sorted(ups))}]\n"
        lines.append(text)
        total += len(text)
        index += 1
    return "".join(lines)


def errors_plan(size: int) -> str:
    """A plan of about `size` bytes whose every task has an unknown field."""
    lines, total, index = [HEAD], len(HEAD), 0
    while total < size:
        text = f"  - {{id: t{index:07d}, type: noop, colour: red}}\n"
        lines.append(text)
        total += len(text)
        index += 1
    return "".join(lines)


SHAPES = {"tasks": tasks_plan, "errors": errors_plan}
FORMATS = ("human", "json", "sarif")


def run(plan: Path, fmt: str) -> dict[str, Any]:
    """One `plan2flow validate` process: wall seconds, peak resident MB, output MB, exit status."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [PLAN2FLOW, "validate", "--format", fmt, str(plan)],
            stdout=out,
            stderr=out,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "100"},
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        printed = out.tell()
    return {
        "seconds": round(seconds, 3),
        "peak_mb": round(usage.ru_maxrss * 1024 / MB, 1),  # KiB on Linux
        "out_mb": round(printed / MB, 3),
        "exit": process.returncode,
    }


def per_mb(row: dict[str, Any], baseline: dict[str, Any], mb: float) -> dict[str, float]:
    return {
        "seconds_per_mb": round((row["seconds"] - baseline["seconds"]) / mb, 2),
        "peak_mb_per_mb": round((row["peak_mb"] - baseline["peak_mb"]) / mb, 1),
    }


def measure(
    sizes: Sequence[float], shapes: Sequence[str], formats: Sequence[str]
) -> dict[str, Any]:
    baseline = {fmt: run(HELLO, fmt) for fmt in formats}
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            for shape in shapes:
                plan = Path(directory) / f"{shape}-{size}.yaml"
                plan.write_text(SHAPES[shape](int(size * MB)), encoding="utf-8")
                mb = plan.stat().st_size / MB
                for fmt in formats:
                    row = {"shape": shape, "format": fmt, "plan_mb": round(mb, 2), **run(plan, fmt)}
                    rows.append({**row, **per_mb(row, baseline[fmt], mb)})
                plan.unlink()
    return {"python": sys.version.split()[0], "baseline": baseline, "runs": rows}


def table(report: dict[str, Any]) -> str:
    lines = ["baseline (hello.yaml): " + ", ".join(
        f"{fmt} {b['seconds']} s {b['peak_mb']} MB" for fmt, b in report["baseline"].items()
    )]  # fmt: skip
    lines.append(
        f"{'shape':<7} {'format':<6} {'plan MB':>7} {'exit':>4} {'s':>7} {'peak MB':>8} "
        f"{'out MB':>7} {'s/MB':>6} {'MB/MB':>6}"
    )
    for r in report["runs"]:
        lines.append(
            f"{r['shape']:<7} {r['format']:<6} {r['plan_mb']:>7} {r['exit']:>4} {r['seconds']:>7} "
            f"{r['peak_mb']:>8} {r['out_mb']:>7} {r['seconds_per_mb']:>6} {r['peak_mb_per_mb']:>6}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sizes", nargs="*", type=float, default=[1.0, 2.0, 4.0], help="plan MB")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    shapes = [s for s in args.shapes.split(",") if s]
    if any(f not in FORMATS for f in formats) or any(s not in SHAPES for s in shapes):
        parser.error(f"formats: {', '.join(FORMATS)}; shapes: {', '.join(SHAPES)}")
    if any(size <= 0 for size in args.sizes):
        parser.error("sizes must be positive")
    report = measure(args.sizes, shapes, formats)
    print(json.dumps(report, sort_keys=True) if args.json else table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
