"""The task commands running in this process, so that a stopped run can stop them.

A run cancelled from the Prefect UI gets SIGTERM from its runner (a worker or ``serve``);
Prefect turns it into an exception in the flow's main thread, and the process then waits for
its task threads, each waiting for its command. Without help a ``sleep 300`` would hold the
process until the runner's 30-second grace ends in SIGKILL. :func:`stop_all` terminates the
commands instead, so their threads, and the process, end at once.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import CommandStopped

_lock = threading.Lock()
_running: dict[subprocess.Popen[bytes], str] = {}
"""Each running command and the flow run it belongs to."""
_stopping: set[str] = set()
"""The flow runs that are stopping: their tasks start no new command."""


@contextmanager
def _registered(process: subprocess.Popen[bytes], flow_run_id: str) -> Iterator[None]:
    with _lock:
        _running[process] = flow_run_id
    try:
        yield
    finally:
        with _lock:
            _running.pop(process, None)


def _is_stopping(flow_run_id: str) -> bool:
    with _lock:
        return flow_run_id in _stopping


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: IO[Any],
    stderr: IO[Any],
    timeout: float | None,
    flow_run_id: str,
) -> int:
    """Run `argv` to its end and return its exit status, as :func:`subprocess.run` would
    (killed on `timeout`, raising :class:`subprocess.TimeoutExpired`); raises
    :class:`CommandStopped` when :func:`stop_all` ended it (or its run was already stopping)."""
    if _is_stopping(flow_run_id):
        raise CommandStopped("the run is stopping: not started")
    process = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
    )
    with _registered(process, flow_run_id):
        try:
            status = process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
    if _is_stopping(flow_run_id):
        raise CommandStopped(f"the run is stopping: terminated with status {status}")
    return status


def running(flow_run_id: str) -> int:
    """How many commands of the flow run's tasks are running now."""
    with _lock:
        return sum(1 for run in _running.values() if run == flow_run_id)


def stop_all(flow_run_id: str) -> int:
    """Terminate the running commands of the flow run's tasks (SIGTERM), and start no new one
    for it; the number terminated."""
    with _lock:
        _stopping.add(flow_run_id)
        processes = [process for process, run in _running.items() if run == flow_run_id]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    return len(processes)
