"""Server-path benchmark: ``plan2flow up``, ``deploy``, ``trigger --wait`` and ``down``, as typed.

Usage::

    python bench/server_path.py [--repeat N] [--postgres] [--plan examples/plans/hello.yaml]

Each command is a subprocess of this script, the installed console script ``.venv/bin/plan2flow``,
with a fresh ``PLAN2FLOW_HOME`` per sequence, no inherited ``PREFECT_*`` or ``PLAN2FLOW_*``
variable (so no ``PREFECT_API_URL``: the commands find the server through the state file that
``up`` writes in the home), ``PREFECT_HOME`` under that home (the directory ``up`` gives the
server and the worker, so no profile of the user's ``~/.prefect`` is read) and ``DO_NOT_TRACK=1``.
The sequence, in this order, each step timed in wall seconds from just before the process starts
until it has exited:

1. ``up --detach --port <free port>`` on the fresh home: starts the server, which creates and
   migrates its database (SQLite in the home, or a new, empty PostgreSQL database), creates the
   work pool, registers the agent blocks and starts the process worker; returns once the server
   has the worker's first heartbeat;
2. ``deploy <plan>``, the first time: must report ``created``;
3. ``deploy <plan>`` again: must report ``unchanged`` (one read, nothing written);
4. ``trigger <plan> --wait``, with the worker at Prefect's default poll interval
   (``PREFECT_WORKER_QUERY_SECONDS`` = 10 s);
5. ``down``;
6. ``up --detach`` on the same home (the database exists and is migrated), this time with
   ``PREFECT_WORKER_QUERY_SECONDS=1`` in its environment, which the worker inherits: that setting
   only changes how often the worker polls for runs (its loops all start at once), not start-up;
7. ``trigger <plan> --wait`` again, the worker polling every second;
8. ``down``, which also runs (untimed) when a step fails, so nothing is left running.

The output lines of ``up`` and ``down`` are time-stamped as they arrive, which splits them into
phases (CLI start-up until the first line, server healthy plus work pool, agent blocks, worker
online, exit; worker stopped, server stopped). A triggered run is split with the timestamps of its
states on the server: the CLI has created it (Scheduled), the worker has picked it up (Pending;
up to one poll interval, so the default 10 s makes this phase anything from 0 to 10 s), the flow
process has started (Running: a new interpreter imports Prefect and loads the flow), the flow has
ended (Completed), and the CLI has noticed and exited (``--wait`` polls every second, then reads
the task runs until two reads agree).

With ``--postgres`` the sequence runs a second time on PostgreSQL (``--postgres-url``, by default
``postgresql+asyncpg://postgres@127.0.0.1:5432``): a fresh database is created with psycopg before
the sequence and dropped after it (``DROP DATABASE ... WITH (FORCE)``). With ``--repeat N`` every
sequence runs N times, each on a fresh home (and database), and the minimum and median of each
step are printed. The output is a plain table per backend, after the machine's context.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
PLAN2FLOW = Path(sys.executable).parent / "plan2flow"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432"
RUN_TIMEOUT = 600.0
FAST_POLL = "1"

# Phases of `up` and `down`: (label, the start of the output line that ends the phase); the last
# phase ends when the process exits.
UP_PHASES = (
    ("CLI start-up", "starting the Prefect server"),
    ("server healthy, work pool", "work pool "),
    ("agent blocks", "agent blocks:"),
    ("worker online", "Prefect UI:"),
    ("exit", None),
)
DOWN_PHASES = (
    ("CLI start-up, stop worker", "stopped the worker"),
    ("stop server", "stopped the Prefect server"),
    ("exit", None),
)
# Phases of `trigger --wait`: (label, the server state that ends the phase).
TRIGGER_PHASES = (
    ("run created (CLI start-up, API)", "SCHEDULED"),
    ("worker pickup (poll)", "PENDING"),
    ("flow process start", "RUNNING"),
    ("flow run", "COMPLETED"),
    ("until exit (--wait)", None),
)


@dataclass
class Finished:
    """A command that has exited: its merged output lines, each with its arrival time (epoch
    seconds, as the server's timestamps), and when it started and ended."""

    argv: list[str]
    started: float
    ended: float
    returncode: int
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def output(self) -> str:
        return "\n".join(text for _, text in self.lines)

    def line_time(self, prefix: str) -> float:
        for stamp, text in self.lines:
            if text.startswith(prefix):
                return stamp
        raise RuntimeError(f"no line starting with {prefix!r} in:\n{self.output}")


def timed(argv: Sequence[str], env: Mapping[str, str], timeout: float = RUN_TIMEOUT) -> Finished:
    """Run a command, time-stamping its output lines (stderr merged) as they arrive."""
    done = Finished(list(argv), time.time(), 0.0, 0)
    process = subprocess.Popen(
        argv,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            done.lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done.returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"{' '.join(argv)} did not exit in {timeout:.0f} s") from None
    finally:
        done.ended = time.time()
        reader.join(10)
        stdout.close()
    return done


def checked(done: Finished, expect: str | None = None) -> Finished:
    """`done`, if it exited with 0 and its output contains `expect`."""
    if done.returncode != 0 or (expect is not None and expect not in done.output):
        wanted = f", expected {expect!r} in its output" if expect else ""
        raise RuntimeError(
            f"{' '.join(done.argv)} exited with {done.returncode}{wanted}:\n{done.output[-4000:]}"
        )
    return done


Figures = dict[tuple[str, str], float]
"""Seconds by (step, phase); the phase "" is the whole step."""


def phases(done: Finished, marks: Sequence[tuple[str, float | None]]) -> dict[str, float]:
    """Seconds between consecutive marks, from the command's start; a None mark is its end."""
    result: dict[str, float] = {}
    previous = done.started
    for label, mark in marks:
        stamp = done.ended if mark is None else mark
        result[label] = stamp - previous
        previous = stamp
    return result


def line_phases(done: Finished, spec: Sequence[tuple[str, str | None]]) -> dict[str, float]:
    return phases(done, [(label, None if p is None else done.line_time(p)) for label, p in spec])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without PREFECT_* and PLAN2FLOW_*, with a fresh home."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "PLAN2FLOW_"))
    }
    env.update(PLAN2FLOW_HOME=str(home), PREFECT_HOME=str(home / "prefect"), DO_NOT_TRACK="1")
    env.update(settings)
    return env


def api_url(home: Path) -> str:
    """The API of the server `up` started in `home` (from its state file)."""
    state = json.loads((home / "server.json").read_text(encoding="utf-8"))
    return str(state["api_url"])


def state_times(url: str, flow_run_id: str) -> dict[str, float]:
    """The first timestamp (epoch seconds) of each state type a flow run went through."""
    response = httpx.get(f"{url}/flow_run_states/", params={"flow_run_id": flow_run_id}, timeout=30)
    response.raise_for_status()
    found: dict[str, float] = {}
    for state in sorted(response.json(), key=lambda s: s["timestamp"]):
        stamp = datetime.fromisoformat(state["timestamp"].replace("Z", "+00:00")).timestamp()
        found.setdefault(state["type"], stamp)
    return found


RUN_ID = re.compile(r"flow run \S+ \(([0-9a-f-]{36})\)")


def trigger_phases(done: Finished, home: Path) -> dict[str, float]:
    match = RUN_ID.search(done.output)
    if match is None:
        raise RuntimeError(f"no flow run id in the output of trigger:\n{done.output}")
    times = state_times(api_url(home), match.group(1))
    missing = [state for _, state in TRIGGER_PHASES if state is not None and state not in times]
    if missing:
        raise RuntimeError(f"flow run {match.group(1)} has no {missing} state: {times}")
    return phases(done, [(label, None if s is None else times[s]) for label, s in TRIGGER_PHASES])


def sequence(plan: Path, home: Path, database_url: str | None) -> Figures:
    """One up / deploy / deploy / trigger / down / up / trigger / down sequence; step seconds."""
    plan2flow = str(PLAN2FLOW)
    database = ["--database-url", database_url] if database_url else []
    env = clean_environment(home)
    fast_env = clean_environment(home, PREFECT_WORKER_QUERY_SECONDS=FAST_POLL)
    figures: Figures = {}

    def record(step: str, done: Finished, parts: Mapping[str, float] | None = None) -> None:
        figures[step, ""] = done.seconds
        for phase, seconds in (parts or {}).items():
            figures[step, phase] = seconds

    def up(label: str, up_env: Mapping[str, str]) -> None:
        port = str(free_port())
        done = checked(timed([plan2flow, "up", "--detach", "--port", port, *database], up_env))
        record(label, done, line_phases(done, UP_PHASES))

    def down(label: str) -> None:
        done = checked(timed([plan2flow, "down"], env), "stopped the Prefect server")
        record(label, done, line_phases(done, DOWN_PHASES))

    def trigger(label: str) -> None:
        done = checked(timed([plan2flow, "trigger", str(plan), "--wait"], env), "Completed")
        record(label, done, trigger_phases(done, home))

    try:
        up("up --detach (fresh home: new database, migrations)", env)
        record(
            "deploy (created)", checked(timed([plan2flow, "deploy", str(plan)], env), ": created")
        )
        record(
            "deploy (unchanged)",
            checked(timed([plan2flow, "deploy", str(plan)], env), ": unchanged"),
        )
        trigger("trigger --wait (worker polls every 10 s, the default)")
        down("down")
        up(f"up --detach (existing database; PREFECT_WORKER_QUERY_SECONDS={FAST_POLL})", fast_env)
        trigger(f"trigger --wait (worker polls every {FAST_POLL} s)")
        down("down (end)")
    finally:
        if (home / "server.json").exists():
            timed([plan2flow, "down"], env)
    return figures


def postgres_conninfo(url: str) -> str:
    """A libpq connection string for the server of a SQLAlchemy URL, database `postgres`."""
    from psycopg.conninfo import make_conninfo

    parts = urlsplit(url)
    info = {"host": parts.hostname or "127.0.0.1", "dbname": "postgres"}
    if parts.port:
        info["port"] = str(parts.port)
    if parts.username:
        info["user"] = parts.username
    if parts.password:
        info["password"] = parts.password
    return make_conninfo("", **info)


@contextlib.contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `url`; yields its URL, then drops it."""
    import psycopg

    name = f"plan2flow_bench_{uuid.uuid4().hex[:12]}"
    info = postgres_conninfo(url)
    with psycopg.connect(info, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url.rstrip('/')}/{name}"
    finally:
        with psycopg.connect(info, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(postgres_conninfo(url), autocommit=True) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def measure(
    plan: Path, repeat: int, backend: str, directory: Path, postgres_url: str
) -> list[Figures]:
    """`repeat` sequences on `backend` ("sqlite" or "postgresql"), each on a fresh home."""
    runs = []
    for index in range(repeat):
        home = directory / f"{backend}-{index}"
        if backend == "sqlite":
            runs.append(sequence(plan, home, None))
        else:
            with postgres_database(postgres_url) as database_url:
                runs.append(sequence(plan, home, database_url))
    return runs


def table(runs: list[Figures]) -> list[str]:
    """The steps (phases indented) with their seconds, or min and median over several runs."""
    labels = {key: f"  {key[1]}" if key[1] else key[0] for key in runs[0]}
    width = max(len(label) for label in labels.values()) + 2
    if len(runs) == 1:
        lines = [f"{'step':<{width}}{'seconds':>9}"]
        lines += [f"{labels[key]:<{width}}{seconds:>9.3f}" for key, seconds in runs[0].items()]
        return lines
    lines = [f"{'step':<{width}}{'min':>9}{'median':>9}"]
    for key, label in labels.items():
        values = [run[key] for run in runs]
        lines.append(f"{label:<{width}}{min(values):>9.3f}{statistics.median(values):>9.3f}")
    return lines


def context(plan: Path, repeat: int, postgres: str | None) -> list[str]:
    lines = [
        f"machine:  {os.cpu_count()} CPUs, {platform.platform()}",
        f"versions: Python {platform.python_version()}, Prefect {metadata.version('prefect')}, "
        f"plan2flow {metadata.version('plan2flow')}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {postgres}" if postgres else ""),
        f"plan:     {plan}",
        f"command:  {PLAN2FLOW}",
    ]
    if repeat > 1:
        lines.append(f"repeat:   {repeat} sequences per backend, each on a fresh home")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=1, help="sequences per backend (default: 1)")
    parser.add_argument(
        "--postgres", action="store_true", help="also run the sequence on PostgreSQL"
    )
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_URL,
        help=f"PostgreSQL server for --postgres, no database (default: {POSTGRES_URL})",
    )
    parser.add_argument("--plan", type=Path, default=HELLO, help="plan to deploy and trigger")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not PLAN2FLOW.exists():
        parser.error(f"{PLAN2FLOW} is not installed")
    plan = args.plan.resolve()
    if not plan.is_file():
        parser.error(f"{plan}: no such plan file")
    backends = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    postgres = postgres_version(args.postgres_url) if args.postgres else None
    print("\n".join(context(plan, args.repeat, postgres)), flush=True)
    with tempfile.TemporaryDirectory(prefix="p2f-bench-server-") as temp:
        for backend in backends:
            runs = measure(plan, args.repeat, backend, Path(temp), args.postgres_url)
            where = "SQLite in the plan2flow home" if backend == "sqlite" else args.postgres_url
            print(f"\nbackend: {backend} ({where})")
            print("\n".join(table(runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
