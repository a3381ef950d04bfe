"""Careless input and broken surroundings end a command with exit status 2 and one line, never a
traceback, and never leave half-written outputs. Paths that fail for root too: a path through a
regular file, or a directory where a file must go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import plan_text
from typer.testing import CliRunner, Result

from plan2flow.cli import app

ROOT = Path(__file__).parents[1]
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
BIN = Path(sys.executable).parent
runner = CliRunner()


def one_line_exit_2(result: Result, expected: str) -> None:
    """Exit status 2, the message as the one error line on stderr (`golden` prints its summary
    first), and no exception escaped the command."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.endswith(f"\nplan2flow: {expected}\n") or (
        result.stderr == f"plan2flow: {expected}\n"
    )
    assert result.stderr.count("plan2flow: ") == 1


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A regular file: no path through it can be created, not even by root."""
    path = tmp_path / "file"
    path.write_text("not a directory\n", encoding="utf-8")
    return path


def test_compile_is_all_or_nothing_when_a_target_is_a_directory(tmp_path: Path) -> None:
    second = tmp_path / "second.yaml"
    second.write_text(plan_text("second", "  - {id: a, type: noop}\n"), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("hello.taskgraph.json", "hello_flow.py", "second.taskgraph.json"):
        (out / name).write_text("old\n", encoding="utf-8")
    (out / "second_flow.py").mkdir()
    result = runner.invoke(app, ["compile", str(HELLO), str(second), "-o", str(out)])
    one_line_exit_2(result, f"cannot write outputs: Is a directory: {out / 'second_flow.py'}")
    assert sorted(p.name for p in out.iterdir()) == [
        "hello.taskgraph.json",
        "hello_flow.py",
        "second.taskgraph.json",
        "second_flow.py",
    ]
    for name in ("hello.taskgraph.json", "hello_flow.py", "second.taskgraph.json"):
        assert (out / name).read_text(encoding="utf-8") == "old\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["schema", "-o", "{file}/schema.json"],
            "cannot write {file}/schema.json: Not a directory: {file}",
        ),
        (
            ["graph", str(HELLO), "-o", "{file}/g.mmd"],
            "cannot write {file}/g.mmd: Not a directory: {file}",
        ),
        (
            ["validate", str(HELLO), "--metrics-file", "{file}/m.prom"],
            "cannot write metrics to {file}/m.prom: Not a directory: {file}",
        ),
        (
            ["compile", str(HELLO), "--metrics-file", "{file}/m.prom", "-o", "{dir}"],
            "cannot write metrics to {file}/m.prom: Not a directory: {file}",
        ),
        (
            ["compile", str(HELLO), "-o", "{file}/out"],
            "cannot write outputs: Not a directory: {file}",
        ),
        (
            ["golden", "update", str(HELLO), "-o", "{file}/out"],
            "cannot write outputs: Not a directory: {file}",
        ),
        (
            ["deploy", str(HELLO), "--prefect-yaml", "{file}/prefect.yaml"],
            "cannot write outputs: Not a directory: {file}",
        ),
    ],
)
def test_an_unwritable_output_is_one_line(
    a_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    fill = {"file": str(a_file), "dir": str(tmp_path / "out")}
    result = runner.invoke(app, [arg.format(**fill) for arg in args])
    one_line_exit_2(result, message.format(**fill))


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["compile", str(HELLO), "-o", ""], "--output-dir"),
        (["schema", "-o", ""], "--output"),
        (["graph", str(HELLO), "-o", ""], "--output"),
        (["validate", str(HELLO), "--metrics-file", ""], "--metrics-file"),
        (["golden", "check", str(HELLO), "-o", ""], "--output-dir"),
        (["deploy", str(HELLO), "--prefect-yaml", ""], "--prefect-yaml"),
    ],
)
def test_an_empty_output_path_is_refused(
    tmp_path: Path, args: list[str], option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    one_line_exit_2(result, f"{option}: empty path (use . for the current directory)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_compile_reports_on_an_ascii_terminal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [str(BIN / "plan2flow"), "compile", str(HELLO), "-o", str(tmp_path)],
        env=env,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert b"hello.yaml \\u2192 " in done.stdout


@pytest.mark.parametrize(
    "args", [["agents", "list"], ["agents", "unregister", "tester"], ["agents", "register"]]
)
@pytest.mark.slow
def test_agents_without_a_server_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    env = {**os.environ}
    done = subprocess.run(
        [str(BIN / "plan2flow"), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("plan2flow: no Prefect server: start one with `plan2flow up`")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["agents", "list"], ["agents", "unregister", "tester"], ["runs"]])
@pytest.mark.slow
def test_a_server_that_is_down_is_one_line(tmp_path: Path, args: list[str]) -> None:
    env = {
        **os.environ,
        "PLAN2FLOW_HOME": str(tmp_path),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    done = subprocess.run(
        [str(BIN / "plan2flow"), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr == (
        "plan2flow: cannot reach the Prefect server at http://127.0.0.1:9/api: "
        "[Errno 111] Connection refused\n"
    )


@pytest.mark.parametrize("command", ["trigger", "runs"])
def test_a_missing_plan_file_is_named(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nosuch.yaml"
    result = runner.invoke(app, [command, str(missing)])
    one_line_exit_2(result, f"{missing}: no such file")


@pytest.mark.usefixtures("run_home", "restore_environment")
def test_a_python_callable_that_raises_is_a_located_task_failure(tmp_path: Path) -> None:
    plan = tmp_path / "raises.yaml"
    plan.write_text(
        plan_text("raises", "  - {id: bad, type: python, params: {callable: 'json:dumps'}}\n"),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["run", str(plan)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (
        "bad: task 'bad': json:dumps raised TypeError: dumps() missing 1 required positional "
        "argument: 'obj'\n"
    ) in result.stdout
