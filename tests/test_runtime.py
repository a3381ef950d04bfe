"""Generated flows run on a real Prefect API: order, parallelism, failures, retries, resume."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import build_module, import_flow, plan_text

from plan2flow.flows import runtime
from plan2flow.flows.errors import StaleModuleError

pytestmark = pytest.mark.usefixtures("run_home")


def run(flow: Any, options: runtime.RunOptions | None = None, **params: Any) -> tuple[Any, Any]:
    with runtime.options(options or runtime.RunOptions()):
        state = flow(**params, return_state=True)
    return state, runtime.summary_of(state)


def states(summary: Any) -> dict[str, str]:
    return {task.id: task.state for task in summary.tasks}


def log_step(log: Path, before: str = "", after: str = "") -> str:
    """A shell task body that appends its task id (and a timestamp) to `log`."""
    return (
        "    type: shell\n"
        "    params:\n"
        "      shell: true\n"
        f"      argv: ['{before}echo \"$P2F_TASK_ID $(date +%s.%N)\" >> {log}{after}']\n"
    )


def read_log(log: Path) -> list[tuple[str, float]]:
    entries = []
    for line in log.read_text().splitlines():
        task_id, stamp = line.split()
        entries.append((task_id, float(stamp)))
    return entries


def test_diamond_runs_in_dependency_order(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    tasks = (
        f"  - id: a\n{log_step(log)}"
        f"  - id: b\n    depends_on: [a]\n{log_step(log)}"
        f"  - id: c\n    depends_on: [a]\n{log_step(log)}"
        f"  - id: d\n    depends_on: [b, c]\n{log_step(log)}"
    )
    flow = import_flow(build_module(tmp_path / "build", plan_text("diamond", tasks)))
    state, summary = run(flow)
    assert state.is_completed()
    assert summary.ok and states(summary) == dict.fromkeys("abcd", "Completed")
    order = [task_id for task_id, _ in read_log(log)]
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]


def test_independent_branches_run_at_the_same_time(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    body = (
        "    type: shell\n"
        "    params:\n"
        "      shell: true\n"
        f"      argv: ['echo start >> {marks}.$P2F_TASK_ID; "
        f"while [ ! -e {marks}.a ] || [ ! -e {marks}.b ]; do sleep 0.05; done']\n"
        "    timeout_seconds: 60\n"
    )
    # Each task waits until both have started: this completes only if they run concurrently.
    tasks = f"  - id: a\n{body}  - id: b\n{body}"
    text = plan_text("parallel", tasks, "defaults: {max_parallelism: 2}\n")
    flow = import_flow(build_module(tmp_path / "build", text))
    state, summary = run(flow)
    assert state.is_completed(), summary


def test_a_failed_task_stops_only_its_downstream(tmp_path: Path) -> None:
    tasks = (
        "  - {id: a, type: noop}\n"
        "  - id: broken\n"
        "    type: shell\n"
        "    depends_on: [a]\n"
        "    params: {shell: true, argv: ['echo oops >&2; exit 3']}\n"
        "  - {id: after, type: noop, depends_on: [broken]}\n"
        "  - {id: later, type: noop, depends_on: [after]}\n"
        "  - {id: other, type: noop, depends_on: [a]}\n"
    )
    flow = import_flow(build_module(tmp_path / "build", plan_text("failing", tasks)))
    state, summary = run(flow)
    assert state.is_failed()
    assert states(summary) == {
        "a": "Completed",
        "broken": "Failed",
        "other": "Completed",
        "after": "UpstreamFailed",
        "later": "UpstreamFailed",
    }
    messages = {task.id: task.message for task in summary.tasks}
    assert "exit status 3" in messages["broken"] and "oops" in messages["broken"]
    assert messages["after"] == "not run: upstream 'broken' did not complete"
    assert "1 task(s) failed: broken; 2 not run: after, later" in state.message


@pytest.mark.slow
def test_retries_wait_the_configured_backoff(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts.log"
    tasks = (
        "  - id: flaky\n"
        "    type: shell\n"
        "    retries: 2\n"
        "    retry_delay_seconds: 0.5\n"
        "    params:\n"
        "      shell: true\n"
        f"      argv: ['date +%s.%N >> {attempts}; [ $(wc -l < {attempts}) -ge 3 ]']\n"
    )
    flow = import_flow(build_module(tmp_path / "build", plan_text("flaky", tasks)))
    state, summary = run(flow)
    assert state.is_completed()
    (task,) = summary.tasks
    assert task.attempts == 3
    stamps = [float(line) for line in attempts.read_text().split()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    # Exponential backoff: 0.5 s then 1.0 s, give or take the 10% jitter (lower bounds only).
    assert gaps[0] >= 0.5 * 0.85
    assert gaps[1] >= 1.0 * 0.85


@pytest.mark.slow
def test_resume_reruns_only_the_failed_task_and_its_downstream(tmp_path: Path) -> None:
    log, flag = tmp_path / "runs.log", tmp_path / "fixed"
    tasks = (
        f"  - id: extract\n{log_step(log, after='; echo rows > $P2F_OUTPUT_RAW')}"
        "    outputs: [raw]\n"
        "  - id: transform\n"
        "    inputs: {raw: extract.raw}\n"
        f"{log_step(log, before=f'test -e {flag} && ')}"
        f"  - id: load\n    depends_on: [transform]\n{log_step(log)}"
        f"  - id: audit\n    depends_on: [extract]\n{log_step(log)}"
    )
    text = plan_text("resume", tasks)
    module = build_module(tmp_path / "build", text)
    flow = import_flow(module)

    state, summary = run(flow)
    assert state.is_failed()
    assert states(summary)["load"] == "UpstreamFailed"
    assert sorted(t for t, _ in read_log(log)) == ["audit", "extract"]

    flag.touch()
    state, summary = run(flow)
    assert state.is_completed()
    assert states(summary) == {
        "extract": "Cached",
        "audit": "Cached",
        "transform": "Completed",
        "load": "Completed",
    }
    assert sorted(t for t, _ in read_log(log)) == ["audit", "extract", "load", "transform"]

    state, summary = run(flow, runtime.RunOptions(no_cache=True))
    assert set(states(summary).values()) == {"Completed"}
    assert len(read_log(log)) == 8


@pytest.mark.slow
def test_a_changed_task_reruns_with_its_downstream(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"

    def text(greeting: str) -> str:
        return plan_text(
            "changed",
            f"  - id: a\n{log_step(log)}"
            f"  - id: b\n    depends_on: [a]\n{log_step(log, before=f'true {greeting} && ')}"
            f"  - id: c\n    depends_on: [b]\n{log_step(log)}",
        )

    run(import_flow(build_module(tmp_path / "one", text("hello"))))
    _, summary = run(import_flow(build_module(tmp_path / "two", text("bonjour"))))
    assert states(summary) == {"a": "Cached", "b": "Completed", "c": "Completed"}
    assert [t for t, _ in read_log(log)] == ["a", "b", "c", "b", "c"]


@pytest.mark.slow
def test_params_reach_tasks_and_are_part_of_the_cache_key(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    tasks = (
        "  - id: greet\n"
        "    type: shell\n"
        f"    params: {{shell: true, argv: ['echo ${{{{ params.who }}}} >> {out}']}}\n"
    )
    text = plan_text("greeting", tasks, "params: {who: {default: world}}\n")
    flow = import_flow(build_module(tmp_path / "build", text))
    run(flow)
    run(flow, who="Ada")
    run(flow)
    assert out.read_text().split() == ["world", "Ada"]


def test_python_tasks_get_kwargs_inputs_and_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "steps_mod.py").write_text(
        "from pathlib import Path\n"
        "def produce(count, outputs):\n"
        "    outputs['numbers'].write_text(' '.join(str(i) for i in range(count)))\n"
        "def total(numbers: Path):\n"
        "    return {'total': sum(int(x) for x in numbers.read_text().split())}\n"
    )
    monkeypatch.syspath_prepend(str(package))
    tasks = (
        "  - id: produce\n"
        "    type: python\n"
        "    params: {callable: 'steps_mod:produce', kwargs: {count: 5}}\n"
        "    outputs: [numbers]\n"
        "  - id: total\n"
        "    type: python\n"
        "    inputs: {numbers: produce.numbers}\n"
        "    params: {callable: 'steps_mod:total'}\n"
    )
    flow = import_flow(build_module(tmp_path / "build", plan_text("py", tasks)))
    state, summary = run(flow)
    assert state.is_completed(), summary
    result = Path(summary.workspace) / ".logs" / "total" / "return.json"
    assert json.loads(result.read_text()) == {"total": 10}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    type: python\n    params: {callable: 'no_such_module:f'}\n", "cannot load"),
        ("    type: shell\n    params: {argv: [no-such-command-p2f]}\n", "command not found"),
        ("    type: shell\n    params: {argv: ['true']}\n    outputs: [x]\n", "did not produce"),
        ("    type: generate_code\n", "the 'generate_code' agent needs output 'code'"),
        (
            "    type: shell\n    timeout_seconds: 0.5\n    params: {argv: [sleep, '5']}\n",
            "exceeded timeout of 0.5 second(s)",
        ),
        ("    type: shell\n    params: {argv: ['true'], cwd: '../..'}\n", "leaves the task"),
    ],
    ids=["python-import", "shell-missing", "missing-output", "agent", "timeout", "cwd-escape"],
)
def test_task_failures_are_explained(tmp_path: Path, body: str, message: str) -> None:
    flow = import_flow(build_module(tmp_path / "build", plan_text("fails", f"  - id: t\n{body}")))
    state, summary = run(flow)
    assert state.is_failed()
    (task,) = summary.tasks
    assert task.state == ("TimedOut" if "timeout" in message else "Failed")
    assert message in task.message


@pytest.mark.slow
def test_a_stale_module_refuses_to_run(tmp_path: Path) -> None:
    module = build_module(tmp_path / "build", plan_text("stale", "  - {id: a, type: noop}\n"))
    flow = import_flow(module)
    newer = build_module(tmp_path / "newer", plan_text("stale", "  - {id: b, type: noop}\n"))
    (module.parent / "stale.taskgraph.json").write_text(
        (newer.parent / "stale.taskgraph.json").read_text()
    )
    state = flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(StaleModuleError, match="the module is stale"):
        state.result()
    done = subprocess.run(
        [sys.executable, str(module)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 2
    assert "stale_flow.py was generated from graph sha256:" in done.stderr


def test_an_edited_graph_file_refuses_to_run(tmp_path: Path) -> None:
    module = build_module(tmp_path / "build", plan_text("edited", "  - {id: a, type: noop}\n"))
    graph = module.parent / "edited.taskgraph.json"
    graph.write_text(graph.read_text().replace('"noop"', '"shell"'))
    state = import_flow(module)(return_state=True)
    with pytest.raises(StaleModuleError, match="was edited after it was compiled"):
        state.result()


def test_an_edited_module_that_rewires_tasks_refuses_to_run(tmp_path: Path) -> None:
    text = plan_text(
        "rewired", "  - {id: a, type: noop}\n  - {id: b, type: noop, depends_on: [a]}\n"
    )
    module = build_module(tmp_path / "build", text)
    module.write_text(
        module.read_text().replace('run.submit("b", wait_for=[a])', 'run.submit("b")')
    )
    state = import_flow(module)(return_state=True)
    with pytest.raises(StaleModuleError, match="submits 'b' after"):
        state.result()


@pytest.mark.slow
def test_large_plans_submit_from_the_graph_file(tmp_path: Path) -> None:
    lines = "".join(
        f"  - {{id: t{i:03d}, type: noop{f', depends_on: [t{i - 1:03d}]' if i else ''}}}\n"
        for i in range(205)
    )
    module = build_module(tmp_path / "build", plan_text("large", lines))
    assert "run.submit_all()" in module.read_text()
    state, summary = run(import_flow(module), runtime.RunOptions())
    assert state.is_completed()
    assert len(summary.tasks) == 205


@pytest.mark.slow
def test_enum_params_are_checked(tmp_path: Path) -> None:
    text = plan_text(
        "enums", "  - {id: a, type: noop}\n", "params: {mode: {default: a, enum: [a, b]}}\n"
    )
    flow = import_flow(build_module(tmp_path / "build", text))
    assert run(flow, mode="b")[0].is_completed()
    state = flow(mode="c", return_state=True)
    with pytest.raises(ValueError, match="parameter 'mode' is 'c'; it must be one of"):
        state.result()


def test_observer_sees_every_state_change(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    flow = import_flow(
        build_module(
            tmp_path / "build",
            plan_text(
                "observed", "  - {id: a, type: noop}\n  - {id: b, type: noop, depends_on: [a]}\n"
            ),
        )
    )
    run(
        flow,
        runtime.RunOptions(observer=lambda task_id, record: seen.append((task_id, record.state))),
    )
    assert ("a", "Running") in seen and ("a", "Completed") in seen and ("b", "Completed") in seen
