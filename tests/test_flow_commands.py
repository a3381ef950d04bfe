"""Task commands of a stopping run are terminated, and only that run's."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from events_nats import wait_until

from plan2flow.flows import commands
from plan2flow.flows.errors import CommandStopped

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def _run(argv: list[str], tmp_path: Path, run_id: str, timeout: float | None = None) -> int:
    with open(tmp_path / f"{uuid.uuid4().hex}.out", "wb") as out:
        return commands.run(
            argv, cwd=tmp_path, env={}, stdout=out, stderr=out, timeout=timeout, flow_run_id=run_id
        )


def _in_thread(call: Any) -> tuple[threading.Thread, list[BaseException | int]]:
    outcome: list[BaseException | int] = []

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_stopping_a_run_terminates_its_commands_and_spares_other_runs(tmp_path: Path) -> None:
    stopped, other = f"stopped-{uuid.uuid4()}", f"other-{uuid.uuid4()}"
    first, first_outcome = _in_thread(lambda: _run(SLEEPER, tmp_path, stopped))
    second, second_outcome = _in_thread(lambda: _run(SLEEPER, tmp_path, other))
    wait_until(lambda: commands.running(stopped) == commands.running(other) == 1, 60, "commands")

    assert commands.stop_all(stopped) == 1
    first.join(60)
    assert not first.is_alive()
    [error] = first_outcome
    assert isinstance(error, CommandStopped) and "status -15" in str(error)
    assert commands.running(stopped) == 0 and commands.running(other) == 1
    with pytest.raises(CommandStopped, match="not started"):
        _run(["true"], tmp_path, stopped)

    assert commands.stop_all(other) == 1
    second.join(60)
    assert isinstance(second_outcome[0], CommandStopped)


def test_a_command_runs_to_its_status_and_is_killed_on_timeout(tmp_path: Path) -> None:
    run_id = f"run-{uuid.uuid4()}"
    assert _run([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, run_id) == 3
    with pytest.raises(subprocess.TimeoutExpired):
        _run(SLEEPER, tmp_path, run_id, timeout=0.5)
    assert commands.running(run_id) == 0
