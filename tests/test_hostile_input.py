"""Values from outside a plan (``--param``, paths under ``PLAN2FLOW_HOME``) are data: they arrive
verbatim and never become shell syntax. Plans run in real ``plan2flow run`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plan2flow_up import Local

from plan2flow.flows.errors import TaskFailure
from plan2flow.flows.executors import TaskContext, run_shell
from plan2flow.flows.graph import GraphTask

ROOT = Path(__file__).parents[1]

HOSTILE = {
    "quote": '"; touch pwned-quote; echo "',
    "single": "'; touch pwned-single; echo '",
    "dollar": "$(touch pwned-dollar)",
    "backtick": "`touch pwned-backtick`",
    "semicolon": "x; touch pwned-semicolon",
    "newline": "x\ntouch pwned-newline\n",
    "dash": "-n",
}
HOSTILE_HOME = "home $(touch pwned-home) `touch pwned-home-tick`; touch pwned-home-semi"


def plan2flow(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`plan2flow ...` in a process of its own, on the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PLAN2FLOW_HOME": str(home),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    command = [str(Path(sys.executable).parent / "plan2flow"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def created(root: Path) -> list[str]:
    """Every file an injected command would have made, anywhere under `root`."""
    return sorted(p.name for p in root.rglob("pwned*"))


def artifacts(home: Path, plan: str) -> dict[str, str]:
    found = (home / "artifacts" / plan).glob("*/*")
    return {p.name: p.read_text(encoding="utf-8") for p in found if p.is_file()}


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.slow
def test_the_example_greets_a_hostile_name_verbatim(tmp_path: Path) -> None:
    home = tmp_path / HOSTILE_HOME
    who = "".join(HOSTILE.values())
    plan = str(ROOT / "examples" / "plans" / "hello.yaml")
    done = plan2flow(tmp_path, home, "run", plan, "--param", f"who={who}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert created(tmp_path) == []
    assert artifacts(home, "hello") == {"greeting": f"Hello, {who}!\n"}


def _task(name: str, script: str) -> str:
    return (
        f"  - id: {name}\n    type: shell\n    outputs: [{name}]\n"
        f"    params:\n      shell: true\n      argv: [{json.dumps(script)}]\n"
    )


def _hostile_plan() -> str:
    params = "".join(f"  {name}: {{type: string}}\n" for name in HOSTILE)
    quoted = " ".join(f'"${{{{ params.{name} }}}}"' for name in HOSTILE)
    bare = " ".join(f"${{{{ params.{name} }}}}" for name in HOSTILE)
    return (
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: hostile}\n"
        f"params:\n{params}tasks:\n"
        + _task("quoted", f"printf '%s|' {quoted} > \"${{{{ outputs.quoted }}}}\"")
        + _task("bare", f"printf '%s|' {bare} > ${{{{ outputs.bare }}}}")
        + _task("single", "printf '%s' '${{ params.quote }}' > \"${{ outputs.single }}\"")
        + "  - id: env\n    type: shell\n    outputs: [env]\n    params:\n"
        "      shell: true\n      env: {VALUE: '${{ params.quote }}'}\n"
        '      argv: [\'printf %s "$VALUE" > "$P2F_OUTPUT_ENV"\']\n'
        "  - id: argv\n    type: shell\n    outputs: [argv]\n    params:\n"
        "      argv: [python, -c, 'import sys; open(sys.argv[1], \"w\").write(sys.argv[2])',\n"
        "             '${{ outputs.argv }}', '${{ params.dash }}']\n"
        "  - id: copy\n    type: shell\n    inputs: {text: quoted.quoted}\n    outputs: [copy]\n"
        "    params:\n      shell: true\n"
        '      argv: [\'cat -- "${{ inputs.text }}" > "${{ outputs.copy }}"\']\n'
        "  - {id: end, type: noop, depends_on: [bare, single, env, argv, copy]}\n"
    )


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.slow
def test_hostile_params_and_home_never_become_shell_syntax(tmp_path: Path) -> None:
    plan = tmp_path / "hostile.yaml"
    plan.write_text(_hostile_plan(), encoding="utf-8")
    home = tmp_path / HOSTILE_HOME
    given = [arg for name, value in HOSTILE.items() for arg in ("--param", f"{name}={value}")]
    done = plan2flow(tmp_path, home, "run", str(plan), *given)
    assert done.returncode == 0, done.stdout + done.stderr
    assert created(tmp_path) == []
    outputs = artifacts(home, "hostile")
    everything = "".join(f"{value}|" for value in HOSTILE.values())
    assert outputs["quoted"] == outputs["copy"] == everything
    assert outputs["single"] == "${P2F_PARAM_QUOTE}"  # single quotes: a shell variable's rule
    assert outputs["env"] == HOSTILE["quote"]
    assert outputs["argv"] == HOSTILE["dash"]
    assert "pwned" in outputs["bare"]  # split into words, still data


def _context(tmp_path: Path, argv: list[str], **values: object) -> TaskContext:
    task = GraphTask("t", "shell", "h", (), {}, (), {}, None, 0, 0.0, None, ())
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    params = {"argv": argv, "shell": True}
    return TaskContext(task, params, {}, {}, tmp_path, logs, param_values=dict(values))


def test_a_nul_byte_fails_the_task_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(TaskFailure, match="embedded null byte"):
        run_shell(_context(tmp_path, ['echo "$P2F_PARAM_WHO"'], who="a\x00b"))


def test_two_names_for_one_variable_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        TaskFailure, match=r"params 'who' and params 'WHO' both map to \$P2F_PARAM_WHO"
    ):
        run_shell(_context(tmp_path, ["true"], who="a", WHO="b"))


@pytest.mark.slow
@pytest.mark.parametrize("local", ["sqlite"], indirect=True)
def test_a_triggered_run_on_the_worker_takes_hostile_params_as_data(local: Local) -> None:
    """`plan2flow trigger --param` reaches the plan through a deployment and a process worker
    (the session's `plan2flow up` server, tests/plan2flow_up.py)."""
    example = (ROOT / "examples" / "plans" / "hello.yaml").read_text(encoding="utf-8")
    plan = local.plan("hostile-trigger", example.replace("name: hello", "name: hostile-trigger", 1))
    who = "".join(HOSTILE.values())
    deployed = local.cli("deploy", str(plan))
    assert deployed.exit_code == 0, deployed.output
    triggered = local.cli("trigger", str(plan), "--param", f"who={who}", "--wait")
    assert triggered.exit_code == 0, triggered.output
    assert "hostile-trigger: Completed" in triggered.output
    assert created(local.home) == [] and created(plan.parent) == []
    assert artifacts(local.home, "hostile-trigger") == {"greeting": f"Hello, {who}!\n"}
