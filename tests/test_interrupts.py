"""`plan2flow run` stopped from outside: Ctrl-C and SIGTERM cancel the run in one line; after a
`kill -9` nothing it started lives on, and the next run removes what it left. Real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect_db import seed

BIN = Path(sys.executable).parent
DEADLINE = 240.0  # seconds; the machine is shared and a cold Prefect start is slow


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout: float = DEADLINE,
    run: subprocess.Popen[str] | None = None,
) -> None:
    """Poll until `condition` holds; fail at the deadline, or at once if `run` ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if run is not None and run.poll() is not None:
            out, err = run.communicate()
            raise AssertionError(
                f"plan2flow run ended ({run.returncode}) before {what}:\n{out}{err}"
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait long for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def children(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is `pid`, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(entry.name), cmdline))
    return found


def slow_plan(directory: Path, task: str) -> Path:
    plan = directory / "slow.yaml"
    plan.write_text(
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: slow}\ntasks:\n"
        "  - {id: first, type: shell, params: {argv: ['true']}}\n"
        f"  - {{id: nap, depends_on: [first], {task}}}\n",
        encoding="utf-8",
    )
    return plan


SHELL_NAP = (
    "type: shell, params: {argv: [sh, -c, 'echo $$ > \"$P2F_WORKDIR/pid\"; exec sleep 300']}"
)
PYTHON_NAP = "type: python, params: {callable: 'napper:nap', kwargs: {seconds: 300}}"


def start_run(plan: Path, home: Path) -> subprocess.Popen[str]:
    """`plan2flow run PLAN` in a process group of its own, as a shell runs a foreground job, in
    Prefect's ephemeral mode."""
    env = {
        **os.environ,
        "PLAN2FLOW_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PYTHONPATH": str(plan.parent),
    }
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [str(BIN / "plan2flow"), "run", str(plan)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def nap_started(home: Path) -> Callable[[], bool]:
    return lambda: any((home / "runs" / "slow").glob("*/nap"))


@pytest.mark.slow
def test_ctrl_c_cancels_the_run_in_one_line_and_exits_130(tmp_path: Path, prefect_db: Path) -> None:
    (tmp_path / "napper.py").write_text(
        "import time\n\n\ndef nap(seconds):\n    time.sleep(seconds)\n"
    )
    home = tmp_path / "home"
    seed(home / "prefect", prefect_db)
    run = start_run(slow_plan(tmp_path, PYTHON_NAP), home)
    try:
        wait_for(nap_started(home), "the slow task started", run=run)
        server = [pid for pid, cmd in children(run.pid) if "uvicorn" in cmd]
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, stderr = run.communicate(timeout=DEADLINE)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    assert re.fullmatch(
        r"plan2flow: interrupted \(SIGINT\): flow run [0-9a-f-]{36} cancelled\n", stderr
    )
    assert server and all(not is_running(pid) for pid in server)
    assert not list((home / "artifacts" / "slow").glob(".plan2flow-*"))


@pytest.mark.slow
def test_sigterm_to_the_process_alone_stops_its_task_commands(
    tmp_path: Path, prefect_db: Path
) -> None:
    home = tmp_path / "home"
    seed(home / "prefect", prefect_db)
    run = start_run(slow_plan(tmp_path, SHELL_NAP), home)
    try:
        pid_file = home / "runs" / "slow"
        wait_for(lambda: any(pid_file.glob("*/nap/pid")), "the slow command started", run=run)
        (written,) = pid_file.glob("*/nap/pid")
        wait_for(lambda: written.read_text().strip().isdigit(), "the pid file")
        command = int(written.read_text())
        os.kill(run.pid, signal.SIGTERM)
        _, stderr = run.communicate(timeout=DEADLINE)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.startswith("plan2flow: interrupted (SIGTERM): flow run ")
    assert stderr.count("\n") == 1
    wait_for(lambda: not is_running(command), "the task's command to end", timeout=30)


@pytest.mark.slow
def test_after_kill_9_the_server_dies_and_the_next_run_cleans_up(
    tmp_path: Path, prefect_db: Path
) -> None:
    home = tmp_path / "home"
    seed(home / "prefect", prefect_db)
    plan = slow_plan(tmp_path, SHELL_NAP)
    run = start_run(plan, home)
    staging = home / "artifacts" / "slow"
    napping = nap_started(home)
    try:
        # The napping task's own staging: `first`'s is published as it ends, and a loaded run
        # killed between the two found none left.
        wait_for(
            lambda: napping() and any(staging.glob(".plan2flow-*.*")),
            "the napping task was staged",
            run=run,
        )
        server = [pid for pid, cmd in children(run.pid) if "uvicorn" in cmd]
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=DEADLINE)
    finally:
        run.kill()
    assert server
    wait_for(lambda: not any(is_running(pid) for pid in server), "the server to die", timeout=60)
    (left,) = staging.glob(".plan2flow-*.*")
    plan.write_text(plan.read_text().replace(SHELL_NAP, "type: shell, params: {argv: ['true']}"))
    again = start_run(plan, home)
    try:
        out, err = again.communicate(timeout=DEADLINE)
    finally:
        again.kill()
    assert again.returncode == 0, out + err
    assert not left.exists()
