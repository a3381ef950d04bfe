"""A plan runs the same in Prefect's thread pool and in its process pool: tasks get everything
they need in their arguments and hand everything the summary needs back in their states."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import build_module, import_flow, plan_text

from plan2flow.flows import runtime

pytestmark = [pytest.mark.usefixtures("run_home"), pytest.mark.slow]

TASKS = """\
  - id: extract
    type: shell
    params:
      shell: true
      argv: ['printf "%s\\\\n" "${{ params.who }}" rows > "${{ outputs.raw }}"']
    outputs: [raw]
  - id: transform
    type: shell
    inputs: {raw: extract.raw}
    params:
      shell: true
      argv: ['wc -l < "${{ inputs.raw }}" > "${{ outputs.count }}"; echo counted; echo $PPID >&2']
    outputs: [count]
  - id: flaky
    type: shell
    retries: 1
    retry_delay_seconds: 0.1
    params: {shell: true, argv: ['[ -e tried ] || { touch tried; exit 1; }']}
  - id: broken
    type: shell
    depends_on: [extract]
    params: {shell: true, argv: ['echo oops >&2; exit 3']}
  - {id: after, type: noop, depends_on: [broken]}
  - {id: done, type: noop, depends_on: [transform, flaky]}
"""


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_with(flow: Any, runner: Any, no_cache: bool) -> tuple[Any, runtime.RunSummary, list[Any]]:
    seen: list[tuple[str, str]] = []
    options = runtime.RunOptions(
        no_cache=no_cache, observer=lambda task_id, record: seen.append((task_id, record.state))
    )
    with runtime.options(options):
        state = flow.with_options(task_runner=runner)(who="Ada", return_state=True)
    summary = runtime.summary_of(state)
    assert summary is not None, state
    return state, summary, seen


def outcome(summary: runtime.RunSummary) -> dict[str, tuple[str, int, str]]:
    return {task.id: (task.state, task.attempts, task.message) for task in summary.tasks}


def test_a_plan_runs_the_same_in_threads_and_in_processes(tmp_path: Path, run_home: Path) -> None:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    text = plan_text("runners", TASKS, "params: {who: {default: world}}\n")
    flow = import_flow(build_module(tmp_path / "build", text))
    artifacts = run_home / "artifacts" / "runners"

    in_threads, threads, _ = run_with(flow, ThreadPoolTaskRunner(max_workers=2), no_cache=True)
    made_in_threads = files(artifacts)
    in_processes, processes, seen = run_with(
        flow, ProcessPoolTaskRunner(max_workers=2), no_cache=True
    )

    assert in_threads.is_failed() and in_processes.is_failed()
    assert in_threads.message == in_processes.message
    assert "1 task(s) failed: broken; 1 not run: after" in in_processes.message
    expected = {
        "extract": ("Completed", 1, ""),
        "transform": ("Completed", 1, ""),
        "flaky": ("Completed", 2, ""),
        "after": ("UpstreamFailed", 0, "not run: upstream 'broken' did not complete"),
        "done": ("Completed", 1, ""),
    }
    for summary in (threads, processes):
        found = outcome(summary)
        broken = found.pop("broken")
        assert found == expected
        assert broken[:2] == ("Failed", 1) and "exit status 3" in broken[2] and "oops" in broken[2]
        assert all(
            task.duration_seconds is not None for task in summary.tasks if task.state == "Completed"
        )
    assert outcome(threads) == outcome(processes)
    # The same outputs, under the same cache keys, and no staging directory left behind.
    assert files(artifacts) == made_in_threads
    assert made_in_threads[next(k for k in made_in_threads if k.endswith("/raw"))] == b"Ada\nrows\n"
    assert made_in_threads[next(k for k in made_in_threads if k.endswith("/count"))] == b"2\n"
    assert not list(artifacts.glob(".plan2flow-*"))
    for summary in (threads, processes):
        log = Path(summary.workspace) / ".logs" / "transform" / "stdout.txt"
        assert log.read_text() == "counted\n"
    # Which process ran the task's command: this one, then a worker of the pool.
    ran_in = [
        int((Path(s.workspace) / ".logs" / "transform" / "stderr.txt").read_text())
        for s in (threads, processes)
    ]
    assert ran_in[0] == os.getpid() and ran_in[1] != os.getpid()
    # The flow's process hears of every task's end, whichever process ran it.
    assert {task_id: state for task_id, state in seen if state != "Running"} == {
        task.id: task.state for task in processes.tasks
    }

    # What the threads made serves the processes' run from the cache (and the other way round).
    _, resumed, _ = run_with(flow, ProcessPoolTaskRunner(max_workers=2), no_cache=False)
    states = {task.id: task.state for task in resumed.tasks}
    assert states == {
        "extract": "Cached",
        "transform": "Cached",
        "flaky": "Cached",
        "broken": "Failed",
        "after": "UpstreamFailed",
        "done": "Cached",
    }
    _, again, _ = run_with(flow, ThreadPoolTaskRunner(max_workers=2), no_cache=False)
    assert {task.id: task.state for task in again.tasks} == states
