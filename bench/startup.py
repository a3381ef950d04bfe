"""Fixed-cost benchmark: how long ``plan2flow run`` takes before, around and after a tiny plan.

Usage::

    python bench/startup.py [--rounds R] [--plan examples/plans/hello.yaml]

The plan is ``examples/plans/hello.yaml`` (three tasks: ``greet`` and ``count`` run shell
commands, ``done`` is a noop), copied into a temporary directory with two timestamps added: the
first task's shell script starts with ``date +%s.%N >> STAMPS``, and the second task
(``wc -c``, run through ``sh -c``) appends a second timestamp when it has finished. Each run is
``plan2flow run <copy>`` as a subprocess of this script (``.venv/bin/plan2flow``), with a fresh
``PLAN2FLOW_HOME`` (so no result is ever served from the cache) and no inherited ``PREFECT_*`` or
``PLAN2FLOW_*`` variable. Measured from just before the process is started:

* ``to_first_task``: until the first task's shell command runs (interpreter and imports,
  compiling the plan, starting Prefect, creating the flow run, submitting the task);
* ``tasks``: from there until the second task has finished (the plan's own work);
* ``after_tasks``: from there until the process has exited (the noop task, the end of the flow
  run including the heartbeat thread's up-to-1-s join, the summary, and process exit, which in
  ephemeral mode also stops the temporary server);
* ``total``: the whole command.

Two modes, R runs each (3 by default), medians reported:

* ``ephemeral``: ``PREFECT_API_URL`` unset, so every ``plan2flow run`` starts its own temporary
  Prefect server on ``$PREFECT_HOME/prefect.db``; one ``PREFECT_HOME`` is shared by the runs. The
  first run (``cold``) creates and migrates that database and is reported on its own.
* ``server``: against ``prefect server start --host 127.0.0.1 --port <free port>`` started by
  this script with its own temporary ``PREFECT_HOME`` and ``PREFECT_SERVER_ANALYTICS_ENABLED=false``
  (time until ``/api/health`` answers is reported as ``server_start_seconds``), with
  ``PREFECT_API_URL=http://127.0.0.1:<port>/api``. The server is stopped at the end (SIGTERM to
  its process group, SIGKILL after 10 s).

For reference, ``cli_seconds`` is ``plan2flow --version`` (interpreter and CLI start-up, no
Prefect) and ``import_prefect_seconds`` is ``python -c "import prefect"``. The output is one JSON
line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
BIN = Path(sys.executable).parent
STOP_GRACE = 10.0
SERVER_TIMEOUT = 180.0
RUN_TIMEOUT = 600.0
PHASES = ("to_first_task", "tasks", "after_tasks", "total")


def executable(name: str) -> str:
    """A console script of this virtualenv (or, failing that, from PATH)."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither in {BIN} nor on PATH")
    return found


def stamped_plan(source: Path, stamps: Path) -> str:
    """`source` (hello.yaml) with timestamps: before the first task's command, after the second's.

    Expects the first two tasks to be shell tasks (the second may be a plain argv)."""
    plan = yaml.safe_load(source.read_text(encoding="utf-8"))
    first, second = plan["tasks"][0], plan["tasks"][1]
    stamp = f"date +%s.%N >> {shlex.quote(str(stamps))}"
    params = first["params"]
    if params.get("shell"):
        params["argv"] = [f"{stamp}; {params['argv'][0]}", *params["argv"][1:]]
    else:
        params.update(shell=True, argv=[f"{stamp}; exec {shlex.join(params['argv'])}"])
    params = second["params"]
    command = params["argv"][0] if params.get("shell") else shlex.join(params["argv"])
    params.update(shell=True, argv=[f"{command} && {stamp}"])
    return yaml.safe_dump(plan, sort_keys=False, width=1_000_000)


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without PREFECT_* and PLAN2FLOW_* variables, plus `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "PLAN2FLOW_"))
    }
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
    )
    env.update(settings)
    return env


def timed_command(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall seconds of a command that must succeed."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=RUN_TIMEOUT)
    return time.perf_counter() - started


def run_once(plan: Path, stamps: Path, home: Path, env: Mapping[str, str]) -> dict[str, float]:
    """One ``plan2flow run`` of the stamped plan; its phases in seconds."""
    stamps.unlink(missing_ok=True)
    run_env = {**env, "PLAN2FLOW_HOME": str(home)}
    argv = [executable("plan2flow"), "run", str(plan)]
    started = time.time()
    done = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(
            f"plan2flow run exited with {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
        )
    marks = [float(line) for line in stamps.read_text(encoding="utf-8").split()]
    if len(marks) != 2:
        raise RuntimeError(f"expected 2 timestamps in {stamps}, found {marks}")
    first, last = marks
    return {
        "to_first_task": first - started,
        "tasks": last - first,
        "after_tasks": ended - last,
        "total": ended - started,
    }


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {phase: round(statistics.median(run[phase] for run in runs), 3) for phase in PHASES}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path, log: Path) -> Iterator[tuple[str, float]]:
    """``prefect server start`` on a free port; yields its API URL and its start-up seconds."""
    port = free_port()
    env = clean_environment(PREFECT_HOME=str(home))
    argv = [executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}/api"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Prefect server exited ({process.returncode}), see {log}")
            if time.perf_counter() - started > SERVER_TIMEOUT:
                raise RuntimeError(f"the Prefect server was not healthy in {SERVER_TIMEOUT} s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).json() is True:
                    break
            time.sleep(0.1)
        yield url, time.perf_counter() - started
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (it was started in its own session), SIGKILL after
    STOP_GRACE seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def measure(rounds: int, source: Path, directory: Path) -> dict[str, Any]:
    """Run the stamped plan in both modes; the figures as a dict."""
    stamps = directory / "stamps.txt"
    plan = directory / "hello.yaml"
    plan.write_text(stamped_plan(source, stamps), encoding="utf-8")
    homes = iter(range(1_000_000))

    def fresh_home() -> Path:
        return directory / "plan2flow-homes" / str(next(homes))

    report: dict[str, Any] = {"plan": str(source), "rounds": rounds}
    base_env = clean_environment(PREFECT_HOME=str(directory / "prefect-reference"))
    cli = timed_command([executable("plan2flow"), "--version"], base_env)
    report["cli_seconds"] = round(cli, 3)
    report["import_prefect_seconds"] = round(
        timed_command([sys.executable, "-c", "import prefect"], base_env), 3
    )

    ephemeral_env = clean_environment(PREFECT_HOME=str(directory / "prefect-ephemeral"))
    cold = run_once(plan, stamps, fresh_home(), ephemeral_env)
    warm = [run_once(plan, stamps, fresh_home(), ephemeral_env) for _ in range(rounds)]
    report["ephemeral"] = {
        "cold": {phase: round(value, 3) for phase, value in cold.items()},
        "median": medians(warm),
        "runs": [{phase: round(value, 3) for phase, value in run.items()} for run in warm],
    }

    with prefect_server(directory / "prefect-server", directory / "server.log") as (url, seconds):
        client_env = clean_environment(
            PREFECT_HOME=str(directory / "prefect-client"), PREFECT_API_URL=url
        )
        first = run_once(plan, stamps, fresh_home(), client_env)
        runs = [run_once(plan, stamps, fresh_home(), client_env) for _ in range(rounds)]
    report["server"] = {
        "server_start_seconds": round(seconds, 3),
        "first": {phase: round(value, 3) for phase, value in first.items()},
        "median": medians(runs),
        "runs": [{phase: round(value, 3) for phase, value in run.items()} for run in runs],
    }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per mode (default: 3)")
    parser.add_argument("--plan", type=Path, default=HELLO, help="plan to stamp and run")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="p2f-bench-startup-") as temp:
        report = measure(args.rounds, args.plan, Path(temp))
    print(json.dumps({"python": sys.version.split()[0], **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
