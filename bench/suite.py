"""The test suite's time against the machine's speed, measured in the same run.

Usage::

    python bench/suite.py [--workers N] [--runs K]

Runs ``make pytest`` (the whole suite under coverage, as ``make test`` runs it, with
``CI=true``) K times, and before and after them a fixed reference job: migrating a new Prefect
SQLite database in a fresh process, the kind of work the suite is made of (imports, SQLAlchemy,
SQLite). Their output goes to stderr; stdout gets one JSON line:

* ``suite_seconds``, ``suite_cpu_seconds``: wall time and CPU time (user and system, of pytest
  and every process it waited for) of each run;
* ``reference_cpu_seconds``: the reference job's CPU time, the less of its two runs;
* ``suite_cpu_in_references``: each run's CPU time in reference jobs.

Why a reference: this machine is shared, and its speed moves from day to day: one commit took
7.5 minutes on one machine and 11 on the next day's, and the reference job took 7 s of CPU on
one day and 13 to 22 s on another. The suite's CPU time in reference jobs moves much less than
its wall time: it is the figure to compare across machines and over time. The reference stays
this one job on purpose (not the suite's own template of tests/prefect_db.py, which may change).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
MIGRATE = (
    "import asyncio\n"
    "from prefect.server.database import provide_database_interface\n"
    "asyncio.run(provide_database_interface().create_db())\n"
)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command and the processes it waited for; a failed command
    ends the benchmark, whose figures would mean nothing."""
    cpu, wall = children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, check=False, stdout=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit status {done.returncode})")
    return time.perf_counter() - wall, children_cpu() - cpu


def reference() -> float:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        }
        return measured([str(PYTHON), "-c", MIGRATE], env)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="pytest-xdist workers")
    parser.add_argument("--runs", type=int, default=1, help="runs of the suite")
    args = parser.parse_args(argv)
    if not PYTHON.exists():
        print("run `make install` first", file=sys.stderr)
        return 2
    env = {**os.environ, "CI": "true"}
    make = ["make", "--no-print-directory", "pytest"]
    if args.workers is not None:
        make.append(f"WORKERS={args.workers}")
    before = reference()
    runs = [measured(make, env) for _ in range(args.runs)]
    ref = min(before, reference())
    print(
        json.dumps(
            {
                "workers": args.workers,
                "suite_seconds": [round(wall, 1) for wall, _ in runs],
                "suite_cpu_seconds": [round(cpu, 1) for _, cpu in runs],
                "reference_cpu_seconds": round(ref, 2),
                "suite_cpu_in_references": [round(cpu / ref, 1) for _, cpu in runs],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
