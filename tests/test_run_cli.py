"""`plan2flow run`: compile, run on a real Prefect API, summarize, exit status."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import plan_text
from typer.testing import CliRunner

from plan2flow.cli import app

ROOT = Path(__file__).parents[1]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("run_home", "restore_environment")


def test_run_a_plan_prints_a_summary_and_exits_0(run_home: Path) -> None:
    result = runner.invoke(
        app, ["run", str(ROOT / "examples" / "plans" / "hello.yaml"), "-p", "who=Ada"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "plan hello: completed" in out
    for task_id in ("greet", "count", "done"):
        assert task_id in out
    assert "flow run: " in out and "artifacts: " in out
    assert "/runs/flow-run/" in out  # the harness is a server: the run has a UI link
    (greeting,) = (run_home / "artifacts" / "hello").glob("*/greeting")
    assert greeting.read_text() == "Hello, Ada!\n"
    assert (run_home / "build" / "hello" / "hello_flow.py").exists()


def test_run_a_failing_plan_exits_1_and_explains(tmp_path: Path) -> None:
    plan = tmp_path / "fails.yaml"
    plan.write_text(
        plan_text(
            "fails",
            "  - {id: boom, type: shell, params: {argv: ['false']}}\n"
            "  - {id: after, type: noop, depends_on: [boom]}\n",
        )
    )
    result = runner.invoke(app, ["run", str(plan), "--max-parallel", "2", "--no-cache"])
    assert result.exit_code == 1
    assert "plan fails: failed" in result.stdout
    assert "UpstreamFailed" in result.stdout
    assert "boom: exit status 1: false\n" in result.stdout
    assert "after: not run: upstream 'boom' did not complete" in result.stdout


def test_run_a_compiled_graph(tmp_path: Path) -> None:
    compiled = runner.invoke(
        app, ["compile", str(ROOT / "examples" / "plans" / "hello.yaml"), "-o", str(tmp_path)]
    )
    assert compiled.exit_code == 0
    result = runner.invoke(app, ["run", str(tmp_path / "hello.taskgraph.json")])
    assert result.exit_code == 0, result.output
    assert "plan hello: completed" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "who"], "expected NAME=VALUE"),
        (["-p", "nobody=1"], "the plan has no such parameter (it has: who)"),
    ],
)
def test_bad_params_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", str(ROOT / "examples" / "plans" / "hello.yaml"), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_typed_and_required_params(tmp_path: Path) -> None:
    plan = tmp_path / "typed.yaml"
    plan.write_text(
        plan_text(
            "typed",
            "  - {id: a, type: noop}\n",
            "params:\n  n: {type: integer}\n  f: {type: boolean, default: false}\n"
            "  x: {type: number, default: 1}\n  o: {type: object, default: {}}\n",
        )
    )
    missing = runner.invoke(app, ["run", str(plan)])
    assert missing.exit_code == 2
    assert "missing required parameter(s): n" in missing.stderr
    wrong = runner.invoke(app, ["run", str(plan), "-p", "n=three"])
    assert wrong.exit_code == 2 and "not a valid integer" in wrong.stderr
    wrong_bool = runner.invoke(app, ["run", str(plan), "-p", "n=1", "-p", "f=maybe"])
    assert wrong_bool.exit_code == 2 and "not a valid boolean" in wrong_bool.stderr
    good = runner.invoke(
        app, ["run", str(plan), "-p", "n=3", "-p", "f=true", "-p", "x=2.5", "-p", 'o={"a": 1}']
    )
    assert good.exit_code == 0, good.output


def test_invalid_plan_is_reported_not_run() -> None:
    result = runner.invoke(
        app, ["run", str(ROOT / "examples" / "plans" / "invalid" / "cycle.yaml")]
    )
    assert result.exit_code == 1
    assert "P2F301" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"kind": "Plan"}', "kind is not 'TaskGraph'"),
    ],
)
def test_bad_graph_files_exit_2(tmp_path: Path, content: str, message: str) -> None:
    graph = tmp_path / "x.taskgraph.json"
    graph.write_text(content)
    result = runner.invoke(app, ["run", str(graph)])
    assert result.exit_code == 2
    assert message in result.stderr


def test_edited_graph_file_exits_2(tmp_path: Path) -> None:
    runner.invoke(
        app, ["compile", str(ROOT / "examples" / "plans" / "hello.yaml"), "-o", str(tmp_path)]
    )
    graph = tmp_path / "hello.taskgraph.json"
    document = json.loads(graph.read_text())
    graph.write_text(graph.read_text().replace('"world"', '"mars"'))
    assert document["params"]["who"]["default"] == "world"
    result = runner.invoke(app, ["run", str(graph)])
    assert result.exit_code == 2
    assert "edited after it was compiled" in result.stderr


def test_missing_graph_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "none.taskgraph.json")])
    assert result.exit_code == 2


def test_live_progress_on_a_terminal(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from plan2flow.compiler import compile_plan
    from plan2flow.server.launch import prefect_environment, run_plan

    text = plan_text("live", "  - {id: a, type: noop}\n  - {id: b, type: noop, depends_on: [a]}\n")
    result = compile_plan(text, "live.yaml")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    prefect_environment()
    code = run_plan(
        result.graph,
        result.flow_source,
        "live.yaml",
        [],
        max_parallel=None,
        no_cache=False,
        console=console,
    )
    assert code == 0
    output = buffer.getvalue()
    assert "plan live: completed" in output
    assert "\x1b[" in output  # drawn for a terminal


@pytest.mark.slow
def test_running_a_generated_module_directly(tmp_path: Path) -> None:
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL
    from support import build_module

    module = build_module(tmp_path / "build", plan_text("direct", "  - {id: a, type: noop}\n"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, str(module)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Finished in state Completed" in done.stderr
