"""`plan2flow golden check|update`, the comparison behind them, and the pre-commit hooks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from plan2flow.cli import app
from plan2flow.compiler import compile_plan
from plan2flow.compiler.codegen import flow_file_name, graph_file_name
from plan2flow.compiler.load import DEFAULT_LIMITS
from plan2flow.compiler.review.golden import (
    Status,
    check_plan,
    is_plan,
    is_searched_dir,
    is_yaml_name,
    pending_writes,
    summary,
    unified_diff,
    without_collisions,
)

ROOT = Path(__file__).parents[1]
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
PLAN2FLOW = str(Path(sys.executable).parent / "plan2flow")

runner = CliRunner()


def _plan_text(name: str, command: str = "echo hi") -> str:
    return (
        "apiVersion: plan2flow/v1\nkind: Plan\n"
        f"metadata: {{name: {name}}}\n"
        "tasks:\n"
        f"  - {{id: a, type: shell, params: {{argv: [{command}]}}}}\n"
        "  - {id: b, type: noop, depends_on: [a]}\n"
    )


def _write_plan(
    folder: Path, name: str, *, compiled: bool = True, command: str = "echo hi"
) -> Path:
    """A plan file, and (``compiled``) its outputs beside it, as `plan2flow compile` writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / f"{name}.yaml"
    plan.write_text(_plan_text(name, command), encoding="utf-8")
    if compiled:
        result = compile_plan(plan.read_bytes(), str(plan))
        (folder / graph_file_name(name)).write_text(result.graph.text, encoding="utf-8")
        (folder / flow_file_name(name)).write_text(result.flow_source, encoding="utf-8")
    return plan


def _stale(plan: Path, name: str) -> None:
    """Change the plan after its outputs were compiled."""
    plan.write_text(_plan_text(name, "echo changed"), encoding="utf-8")


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: its bytes and modification time."""
    return {
        path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository-like folder, made the working directory: paths in messages are relative."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: plan2flow/v1\nkind: Plan\n", True),
        ("# comment\n\napiVersion: 'plan2flow/v1'\n", True),
        ('kind: Plan\napiVersion : "plan2flow/v2"\n', True),
        ("\ufeffapiVersion: plan2flow/v1\n", True),
        ("apiVersion: plan2flow/v1\ntasks: [unclosed\n", True),
        ("apiVersion: v1\nkind: ConfigMap\n", False),
        ("name: project\npull:\n  - prefect.deployments.steps.git_clone: {}\n", False),
        ("spec:\n  apiVersion: plan2flow/v1\n", False),
        ("# apiVersion: plan2flow/v1\n", False),
        ("", False),
    ],
)
def test_a_plan_is_yaml_with_a_top_level_plan2flow_api_version(text: str, expected: bool) -> None:
    assert is_plan(text) is expected


def test_which_files_and_folders_are_searched() -> None:
    assert [is_yaml_name(n) for n in ("a.yaml", "b.yml", "C.YAML", "a.json", "yaml")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    searched = ["plans", "examples", "build"]
    skipped = [".git", ".venv", ".github", "node_modules", "__pycache__"]
    assert all(is_searched_dir(n) for n in searched)
    assert not any(is_searched_dir(n) for n in skipped)


def test_unified_diff_of_a_stale_file() -> None:
    assert unified_diff(Path("plans/x.json"), b"a\nb\nc\n", "a\nB\nc\n") == (
        "--- committed/plans/x.json\n+++ compiled/plans/x.json\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    )


def test_unified_diff_of_a_missing_file_starts_from_dev_null() -> None:
    assert unified_diff(Path("/abs/x.json"), None, "a\n") == (
        "--- /dev/null\n+++ compiled/abs/x.json\n@@ -0,0 +1 @@\n+a\n"
    )


def test_unified_diff_marks_a_last_line_without_newline() -> None:
    assert unified_diff(Path("x"), b"a", "a\n") == (
        "--- committed/x\n+++ compiled/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n"
    )


def test_check_plan_compares_both_outputs_through_the_reader(tmp_path: Path) -> None:
    plan = _write_plan(tmp_path, "demo")
    graph, module = tmp_path / "demo.taskgraph.json", tmp_path / "demo_flow.py"
    committed = {graph: graph.read_bytes(), module: b"old\n"}
    asked: list[Path] = []

    def read(path: Path) -> bytes | None:
        asked.append(path)
        return committed.get(path)

    check = check_plan(plan, plan.read_bytes(), read)
    assert asked == [graph, module]
    assert [(o.path, o.status) for o in check.outputs] == [
        (graph, Status.UP_TO_DATE),
        (module, Status.STALE),
    ]
    assert check.status is Status.STALE
    assert check.outputs[0].diff == ""
    assert check.outputs[1].diff.startswith(f"--- committed/{module.as_posix().lstrip('/')}\n")
    assert pending_writes([check]) == [(module, check.outputs[1].compiled)]
    assert check.outputs[1].compiled == module.read_text(encoding="utf-8")
    assert summary([check]) == "1 plan(s): 0 up to date, 1 stale, 0 missing, 0 invalid"


def test_check_plan_looks_in_the_output_dir(tmp_path: Path) -> None:
    plan = _write_plan(tmp_path, "demo", compiled=False)
    check = check_plan(plan, plan.read_bytes(), lambda _path: None, tmp_path / "out")
    assert [o.path for o in check.outputs] == [
        tmp_path / "out" / "demo.taskgraph.json",
        tmp_path / "out" / "demo_flow.py",
    ]
    assert check.status is Status.MISSING
    assert all(o.diff.startswith("--- /dev/null\n") for o in check.outputs)


def test_missing_outranks_stale(tmp_path: Path) -> None:
    plan = _write_plan(tmp_path, "demo", compiled=False)
    check = check_plan(plan, plan.read_bytes(), lambda p: b"x" if p.suffix == ".json" else None)
    assert [o.status for o in check.outputs] == [Status.STALE, Status.MISSING]
    assert check.status is Status.MISSING


def test_an_invalid_plan_has_diagnostics_and_no_outputs(tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("apiVersion: plan2flow/v1\nkind: Plan\n", encoding="utf-8")
    check = check_plan(plan, plan.read_bytes(), lambda _path: pytest.fail("nothing to read"))
    assert check.status is Status.INVALID
    assert check.outputs == () and pending_writes([check]) == []
    assert check.diagnostics and all(d.file == str(plan) for d in check.diagnostics)


def test_without_collisions_invalidates_the_second_plan_of_a_name(tmp_path: Path) -> None:
    first = _write_plan(tmp_path, "same")
    second = tmp_path / "copy.yaml"
    second.write_bytes(first.read_bytes())
    other = _write_plan(tmp_path, "other")
    checks = [check_plan(p, p.read_bytes(), lambda _p: None) for p in (first, second, other)]
    kept = without_collisions(checks)
    assert [c.status for c in kept] == [Status.MISSING, Status.INVALID, Status.MISSING]
    (problem,) = kept[1].diagnostics
    assert problem.code == "P2F210"
    assert problem.line == 3 and problem.file == str(second)
    assert problem.message == (
        f"plan name 'same' collides with the plan in {first}: both would write "
        f"{tmp_path / 'same.taskgraph.json'}"
    )


# --- golden check -------------------------------------------------------------------------------


def test_check_passes_when_every_output_is_up_to_date(project: Path) -> None:
    _write_plan(project / "plans", "alpha")
    _write_plan(project / "plans" / "nested", "beta")
    result = _invoke("golden", "check")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == "2 plan(s): 2 up to date, 0 stale, 0 missing, 0 invalid\n"


def test_check_shows_a_stale_output_as_a_diff(project: Path) -> None:
    plan = _write_plan(project / "plans", "alpha")
    _stale(plan, "alpha")
    result = _invoke("golden", "check", "plans")
    assert result.exit_code == 1
    graph, module = "plans/alpha.taskgraph.json", "plans/alpha_flow.py"
    assert result.stderr == (
        f"plans/alpha.yaml: {graph} is stale\n"
        f"plans/alpha.yaml: {module} is stale\n"
        "1 plan(s): 0 up to date, 1 stale, 0 missing, 0 invalid\n"
        "run 'plan2flow golden update' with the same arguments to rewrite them\n"
    )
    diffs = re.split(r"(?m)^(?=--- )", result.stdout)[1:]
    assert [d.splitlines()[:2] for d in diffs] == [
        [f"--- committed/{graph}", f"+++ compiled/{graph}"],
        [f"--- committed/{module}", f"+++ compiled/{module}"],
    ]
    assert '"argv":["echo changed"]' in diffs[0]
    assert '-    {"agent":null' in diffs[0] and '+    {"agent":null' in diffs[0]


def test_check_shows_a_missing_output_as_a_diff_from_nothing(project: Path) -> None:
    _write_plan(project / "plans", "alpha")
    (project / "plans" / "alpha_flow.py").unlink()
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    assert result.stdout.startswith("--- /dev/null\n+++ compiled/plans/alpha_flow.py\n@@ -0,0 +1,")
    assert "plans/alpha.yaml: plans/alpha_flow.py is missing\n" in result.stderr
    assert "1 plan(s): 0 up to date, 0 stale, 1 missing, 0 invalid\n" in result.stderr


def test_check_reports_an_invalid_plan_with_located_diagnostics(project: Path) -> None:
    plans = project / "plans"
    plans.mkdir()
    (plans / "broken.yaml").write_text(
        "apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {name: broken}\n"
        "tasks:\n  - {id: a, type: shel}\n",
        encoding="utf-8",
    )
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "plans/broken.yaml:5:19: P2F106 error: unknown task type 'shel'" in result.stderr
    assert "  - {id: a, type: shel}" in result.stderr
    assert result.stderr.endswith("1 plan(s): 0 up to date, 0 stale, 0 missing, 1 invalid\n")


def test_check_reports_every_plan_when_several_fail(project: Path) -> None:
    plans = project / "plans"
    _write_plan(plans, "fine")
    _stale(_write_plan(plans, "stale"), "stale")
    _write_plan(plans, "missing", compiled=False)
    (plans / "invalid.yaml").write_text("apiVersion: plan2flow/v1\nkind: Plan\n", "utf-8")
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    assert "plans/stale.yaml: plans/stale.taskgraph.json is stale" in result.stderr
    assert "plans/missing.yaml: plans/missing.taskgraph.json is missing" in result.stderr
    assert "plans/missing.yaml: plans/missing_flow.py is missing" in result.stderr
    assert "plans/invalid.yaml:1:1: P2F1" in result.stderr
    assert result.stderr.splitlines()[-2] == (
        "4 plan(s): 1 up to date, 1 stale, 1 missing, 1 invalid"
    )
    headers = [line for line in result.stdout.splitlines() if line.startswith("+++ ")]
    assert headers == [
        "+++ compiled/plans/missing.taskgraph.json",
        "+++ compiled/plans/missing_flow.py",
        "+++ compiled/plans/stale.taskgraph.json",
        "+++ compiled/plans/stale_flow.py",
    ]


def test_check_writes_nothing(project: Path) -> None:
    plans = project / "plans"
    _stale(_write_plan(plans, "stale"), "stale")
    _write_plan(plans, "missing", compiled=False)
    before = _tree(project)
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    assert _tree(project) == before


def test_check_skips_other_yaml_and_hidden_and_vendored_folders(project: Path) -> None:
    _write_plan(project / "plans", "alpha")
    (project / "prefect.yaml").write_text("name: demo\npull: []\n", encoding="utf-8")
    (project / ".pre-commit-config.yaml").write_text("repos: []\n", encoding="utf-8")
    (project / "docker-compose.yml").write_text("services: {}\n", encoding="utf-8")
    for hidden in (".git", ".venv/lib", "node_modules/pkg", ".github/workflows"):
        _write_plan(project / hidden, "hidden", compiled=False)
    result = _invoke("golden", "check")
    assert result.exit_code == 0, result.output
    assert result.stderr == "1 plan(s): 1 up to date, 0 stale, 0 missing, 0 invalid\n"


def test_check_takes_files_and_skips_named_files_that_are_not_plans(project: Path) -> None:
    plan = _write_plan(project / "plans", "alpha")
    _stale(_write_plan(project / "plans", "other"), "other")
    (project / "prefect.yaml").write_text("name: demo\n", encoding="utf-8")
    result = _invoke("golden", "check", "prefect.yaml", str(plan), str(plan), "plans/alpha.yaml")
    assert result.exit_code == 0, result.output
    assert result.stderr == "1 plan(s): 1 up to date, 0 stale, 0 missing, 0 invalid\n"


def test_check_with_no_plans_passes(project: Path) -> None:
    result = _invoke("golden", "check")
    assert result.exit_code == 0
    assert result.stderr == "0 plan(s): 0 up to date, 0 stale, 0 missing, 0 invalid\n"


def test_check_follows_output_dir(project: Path) -> None:
    plans = project / "plans"
    _write_plan(plans, "alpha", compiled=False)
    compiled = _invoke("compile", "plans/alpha.yaml", "--output-dir", "build")
    assert compiled.exit_code == 0, compiled.output
    assert _invoke("golden", "check", "--output-dir", "build").exit_code == 0
    beside = _invoke("golden", "check")
    assert beside.exit_code == 1
    assert "plans/alpha.yaml: plans/alpha.taskgraph.json is missing" in beside.stderr


def test_check_agrees_with_the_examples_committed_by_compile(project: Path) -> None:
    plans = project / "examples"
    plans.mkdir()
    for example in sorted((ROOT / "examples" / "plans").glob("*.yaml")):
        shutil.copy(example, plans / example.name)
    assert _invoke("compile", *sorted(str(p) for p in plans.glob("*.yaml"))).exit_code == 0
    result = _invoke("golden", "check")
    assert result.exit_code == 0, result.output
    assert result.stderr == "5 plan(s): 5 up to date, 0 stale, 0 missing, 0 invalid\n"


def test_a_path_that_does_not_exist_exits_2(project: Path) -> None:
    result = _invoke("golden", "check", "nowhere", "plans/x.yaml")
    assert result.exit_code == 2
    assert result.stderr == "plan2flow: nowhere: no such file or directory\n"


def test_an_unreadable_plan_exits_2(project: Path) -> None:
    big = project / "big.yaml"
    with open(big, "wb") as handle:
        handle.write(b"apiVersion: plan2flow/v1\n")
        handle.truncate(DEFAULT_LIMITS.max_bytes + 1)
    result = _invoke("golden", "check")
    assert result.exit_code == 2
    assert "big.yaml: P2F002 error: file is larger than the limit" in result.stderr
    assert result.stderr.endswith("1 plan(s): 0 up to date, 0 stale, 0 missing, 1 invalid\n")


def test_a_plan_file_that_cannot_be_opened_is_reported_not_skipped(project: Path) -> None:
    (project / "loop.yaml").symlink_to("loop.yaml")
    result = _invoke("golden", "check", "loop.yaml")
    assert result.exit_code == 2
    assert "loop.yaml: no such file or directory" in result.stderr
    target = project / "plans" / "self.yaml"
    target.parent.mkdir()
    target.symlink_to(target.name)
    walked = _invoke("golden", "check", "plans")
    assert walked.exit_code == 2
    assert "plans/self.yaml: P2F001 error: cannot read plan" in walked.stderr


def test_an_output_that_cannot_be_read_exits_2(project: Path) -> None:
    _write_plan(project / "plans", "alpha", compiled=False)
    (project / "plans" / "alpha.taskgraph.json").mkdir()
    result = _invoke("golden", "check")
    assert result.exit_code == 2
    assert result.stderr == ("plan2flow: cannot read plans/alpha.taskgraph.json: Is a directory\n")


def test_two_plans_of_one_name_collide(project: Path) -> None:
    first = _write_plan(project / "plans", "same")
    (project / "plans" / "twin.yaml").write_bytes(first.read_bytes())
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    assert (
        "plans/twin.yaml:3:18: P2F210 error: plan name 'same' collides with the plan in "
        "plans/same.yaml: both would write plans/same.taskgraph.json" in result.stderr
    )


# --- golden update ------------------------------------------------------------------------------


def test_update_rewrites_stale_and_missing_outputs_then_check_passes(project: Path) -> None:
    plans = project / "plans"
    _write_plan(plans, "fine")
    _stale(_write_plan(plans, "stale"), "stale")
    _write_plan(plans, "missing", compiled=False)
    fine_before = (plans / "fine.taskgraph.json").stat().st_mtime_ns
    result = _invoke("golden", "update")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "wrote plans/missing.taskgraph.json (was missing)\n"
        "wrote plans/missing_flow.py (was missing)\n"
        "wrote plans/stale.taskgraph.json (was stale)\n"
        "wrote plans/stale_flow.py (was stale)\n"
    )
    assert result.stderr == "3 plan(s): 1 up to date, 1 stale, 1 missing, 0 invalid\n"
    assert (plans / "fine.taskgraph.json").stat().st_mtime_ns == fine_before
    after = _invoke("golden", "check")
    assert after.exit_code == 0, after.output
    assert after.stderr == "3 plan(s): 3 up to date, 0 stale, 0 missing, 0 invalid\n"
    for name in ("missing", "stale"):
        result_text = compile_plan((plans / f"{name}.yaml").read_bytes(), f"plans/{name}.yaml")
        assert (plans / f"{name}.taskgraph.json").read_text("utf-8") == result_text.graph.text
        assert (plans / f"{name}_flow.py").read_text("utf-8") == result_text.flow_source


def test_update_writes_the_same_bytes_as_compile(project: Path) -> None:
    plans = project / "plans"
    _write_plan(plans, "alpha", compiled=False)
    assert _invoke("golden", "update", "--output-dir", "golden").exit_code == 0
    assert _invoke("compile", "plans/alpha.yaml", "--output-dir", "compiled").exit_code == 0
    assert _tree(project / "golden").keys() == _tree(project / "compiled").keys()
    for name, (content, _) in _tree(project / "golden").items():
        assert (project / "compiled" / name).read_bytes() == content


def test_update_writes_nothing_when_a_plan_is_invalid(project: Path) -> None:
    plans = project / "plans"
    _stale(_write_plan(plans, "stale"), "stale")
    (plans / "invalid.yaml").write_text("apiVersion: plan2flow/v1\nkind: Plan\n", "utf-8")
    before = _tree(project)
    result = _invoke("golden", "update")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.endswith(
        "2 plan(s): 0 up to date, 1 stale, 0 missing, 1 invalid\n"
        "nothing written: every plan must compile first\n"
    )
    assert _tree(project) == before


def test_update_with_nothing_to_do_writes_nothing(project: Path) -> None:
    _write_plan(project / "plans", "alpha")
    before = _tree(project)
    result = _invoke("golden", "update")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert _tree(project) == before


def test_update_that_cannot_write_exits_2(project: Path) -> None:
    _write_plan(project / "plans", "alpha", compiled=False)
    (project / "blocker").write_text("", encoding="utf-8")
    result = _invoke("golden", "update", "--output-dir", "blocker/out")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("plan2flow: cannot write outputs: ")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_golden_without_a_subcommand_shows_help() -> None:
    result = _invoke("golden")
    assert result.exit_code == 2
    assert "check" in result.output and "update" in result.output


# --- pre-commit hooks ---------------------------------------------------------------------------


HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
HOOK_KEYS = {"id", "name", "entry", "language", "description", "types", "files", "pass_filenames"}


def test_hook_manifest_has_the_required_keys() -> None:
    assert isinstance(HOOKS, list)
    assert [hook["id"] for hook in HOOKS] == ["plan2flow-validate", "plan2flow-golden"]
    for hook in HOOKS:
        assert {"id", "name", "entry", "language"} <= hook.keys() <= HOOK_KEYS
        assert hook["language"] == "python"
        assert hook["types"] == ["yaml"]
        re.compile(hook["files"])
        assert hook.get("pass_filenames", True) is True
    assert {hook["id"]: hook["entry"] for hook in HOOKS} == {
        "plan2flow-validate": "python -m plan2flow.cli.hooks validate",
        "plan2flow-golden": "plan2flow golden check",
    }


def _staged_files(hook: dict[str, object], files: list[str]) -> list[str]:
    """The files pre-commit passes to a hook: `files` is searched in the path, `types: [yaml]`
    keeps .yaml and .yml files."""
    pattern = re.compile(str(hook["files"]))
    return [f for f in files if pattern.search(f) and f.endswith((".yaml", ".yml"))]


def _run_hook(hook: dict[str, object], files: list[str], cwd: Path) -> int:
    command, *args = str(hook["entry"]).split()
    assert command in ("plan2flow", "python")
    done = subprocess.run(
        [
            PLAN2FLOW if command == "plan2flow" else sys.executable,
            *args,
            *_staged_files(hook, files),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert "Traceback" not in done.stderr
    return done.returncode


@pytest.mark.slow
def test_hooks_run_like_pre_commit_on_good_and_stale_plans(tmp_path: Path) -> None:
    validate, golden = HOOKS
    good = _write_plan(tmp_path / "plans", "good")
    stale = _write_plan(tmp_path / "plans", "stale")
    (tmp_path / "prefect.yaml").write_text("name: demo\n", encoding="utf-8")
    (tmp_path / "plans" / "notes.md").write_text("# notes\n", encoding="utf-8")
    changed = ["prefect.yaml", "plans/good.yaml", "plans/notes.md", "plans/good.taskgraph.json"]
    assert _staged_files(golden, changed) == ["plans/good.yaml"]
    assert _run_hook(validate, changed, tmp_path) == 0
    assert _run_hook(golden, changed, tmp_path) == 0
    _stale(stale, "stale")
    both = [*changed, "plans/stale.yaml"]
    assert _run_hook(validate, both, tmp_path) == 0
    assert _run_hook(golden, both, tmp_path) == 1
    assert _run_hook(golden, changed, tmp_path) == 0, "only the changed plans are checked"
    good.write_text("apiVersion: plan2flow/v1\nkind: Plan\n", encoding="utf-8")
    assert _run_hook(validate, changed, tmp_path) == 1
    assert _run_hook(golden, changed, tmp_path) == 1


@pytest.mark.slow
def test_both_hooks_select_plans_the_same_way(tmp_path: Path) -> None:
    """Other YAML in a plans folder passes both hooks; a broken plan fails both."""
    validate, golden = HOOKS
    _write_plan(tmp_path / "plans", "good")
    (tmp_path / "plans" / "values.yaml").write_text("replicas: 3\nimage: x\n", "utf-8")
    (tmp_path / "plans" / "empty.plan.yaml").write_text("", "utf-8")
    (tmp_path / "plans" / "broken.yaml").write_text(
        "apiVersion: plan2flow/v1\nkind: Plan\n", "utf-8"
    )
    cases = {
        ("plans/values.yaml",): 0,
        ("plans/values.yaml", "plans/empty.plan.yaml"): 0,
        ("plans/values.yaml", "plans/good.yaml"): 0,
        ("plans/values.yaml", "plans/broken.yaml"): 1,
    }
    for files, status in cases.items():
        assert _run_hook(golden, list(files), tmp_path) == status, files
        assert _run_hook(validate, list(files), tmp_path) == status, files


def test_the_hook_entry_keeps_options_and_unreadable_files(tmp_path: Path) -> None:
    from plan2flow.cli import hooks

    other = tmp_path / "other.yaml"
    other.write_text("a: 1\n", "utf-8")
    assert hooks.main(["validate", "--strict", str(other)]) == 0
    assert hooks.holds_plan(str(tmp_path / "missing.yaml"))
    assert hooks.main(["validate", str(tmp_path / "missing.yaml")]) == 2
    good = _write_plan(tmp_path, "good", compiled=False)
    assert hooks.main(["validate", "-f", "json", str(other), str(good)]) == 0


def test_hook_files_pattern_matches_plan_locations() -> None:
    pattern = re.compile(HOOKS[0]["files"])
    assert all(
        pattern.search(p)
        for p in ("plans/a.yaml", "examples/plans/b.yml", "deploy/nightly.plan.yaml")
    )
    assert not any(
        pattern.search(p) for p in ("prefect.yaml", ".pre-commit-config.yaml", "myplans.yaml")
    )


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs the patch program")
def test_the_diffs_on_stdout_are_a_patch(project: Path) -> None:
    """`plan2flow golden check | patch -p1` makes the outputs what `golden update` would."""
    plans = project / "plans"
    _stale(_write_plan(plans, "stale"), "stale")
    _write_plan(plans, "missing", compiled=False)
    result = _invoke("golden", "check")
    assert result.exit_code == 1
    subprocess.run(["patch", "-p1", "--quiet"], input=result.stdout, text=True, check=True)
    assert _invoke("golden", "check").exit_code == 0
