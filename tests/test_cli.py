"""The command line: exit statuses, output formats, atomic all-or-nothing writes, metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler.load import DEFAULT_LIMITS

ROOT = Path(__file__).parents[1]
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
FACTORY = ROOT / "examples" / "plans" / "software-factory.yaml"
INVALID = ROOT / "examples" / "plans" / "invalid"

runner = CliRunner()


def plan(tmp_path: Path, name: str, body: str, filename: str | None = None) -> Path:
    path = tmp_path / (filename or f"{name}.yaml")
    path.write_text(
        f"apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {{name: {name}}}\n{body}",
        encoding="utf-8",
    )
    return path


def test_validate_valid_plan_exits_0() -> None:
    result = runner.invoke(app, ["validate", str(HELLO)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{HELLO}: valid\n"


def test_validate_invalid_plan_exits_1_with_located_diagnostics() -> None:
    path = INVALID / "several-errors.yaml"
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:7:25: P2F106 error: unknown task type 'shel'" in result.stderr
    assert f"{path}:8:46: P2F202 error" in result.stderr
    assert f"{path}:9:62: P2F104 error" in result.stderr
    assert result.stderr.rstrip().endswith("1 plan(s) checked: 3 error(s), 0 warning(s)")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_missing_file_exits_2_with_p2f001(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 2
    assert f"{missing}: P2F001 error: cannot read plan: No such file or directory" in result.stderr


def test_directory_instead_of_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compile", str(tmp_path)])
    assert result.exit_code == 2
    assert "P2F001" in result.stderr


def test_oversized_file_exits_2_with_p2f002(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(DEFAULT_LIMITS.max_bytes + 1)
    result = runner.invoke(app, ["validate", str(big)])
    assert result.exit_code == 2
    assert "P2F002 error: file is larger than the limit" in result.stderr


def test_usage_error_exits_2() -> None:
    result = runner.invoke(app, ["compile", "--format", "xml", str(HELLO)])
    assert result.exit_code == 2


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    path = INVALID / "disconnected.yaml"
    relaxed = runner.invoke(app, ["validate", str(path)])
    assert relaxed.exit_code == 0
    assert "P2F303 warning" in relaxed.stderr
    strict = runner.invoke(app, ["validate", "--strict", str(path)])
    assert strict.exit_code == 1
    assert "P2F303 error" in strict.stderr


def test_compile_writes_graph_beside_plan_by_default(tmp_path: Path) -> None:
    path = plan(tmp_path, "demo", "tasks:\n  - {id: a, type: noop}\n")
    result = runner.invoke(app, ["compile", str(path)])
    assert result.exit_code == 0, result.output
    written = tmp_path / "demo.taskgraph.json"
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["kind"] == "TaskGraph"
    assert document["hash"] in result.stdout
    assert "1 tasks, 0 edges" in result.stdout


def test_compile_output_dir_and_hash_command_agree(tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"
    result = runner.invoke(app, ["compile", str(FACTORY), "-o", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "inventory-service.taskgraph.json").read_text(encoding="utf-8"))
    hashed = runner.invoke(app, ["hash", str(FACTORY)])
    assert hashed.exit_code == 0
    assert hashed.stdout == document["hash"] + "\n"
    # The graph and the flow module are written, and no temporary files are left behind.
    assert sorted(p.name for p in out.iterdir()) == [
        "inventory-service.taskgraph.json",
        "inventory_service_flow.py",
    ]


def test_hash_of_invalid_plan_reports_and_exits_1() -> None:
    result = runner.invoke(app, ["hash", str(INVALID / "cycle.yaml")])
    assert result.exit_code == 1
    assert "P2F301" in result.stderr
    assert result.stdout == ""


def test_hash_of_several_plans_prints_a_line_each_or_nothing(tmp_path: Path) -> None:
    good = plan(tmp_path, "good", "tasks:\n  - {id: a, type: noop}\n")
    other = plan(tmp_path, "other", "tasks:\n  - {id: b, type: noop}\n")
    result = runner.invoke(app, ["hash", str(good), str(other)])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    single = {p: runner.invoke(app, ["hash", str(p)]).stdout.strip() for p in (good, other)}
    assert result.stdout == f"{single[good]}  {good}\n{single[other]}  {other}\n"
    assert single[good] != single[other]
    failed = runner.invoke(app, ["hash", str(good), str(INVALID / "cycle.yaml")])
    assert failed.exit_code == 1
    assert failed.stdout == ""
    assert "P2F301" in failed.stderr and "2 plan(s) checked" in failed.stderr


def test_nothing_is_written_unless_every_plan_is_valid(tmp_path: Path) -> None:
    good = plan(tmp_path, "good", "tasks:\n  - {id: a, type: noop}\n")
    bad = plan(tmp_path, "bad", "tasks:\n  - {id: a, type: nope}\n")
    existing = tmp_path / "good.taskgraph.json"
    existing.write_text("old\n", encoding="utf-8")
    result = runner.invoke(app, ["compile", str(good), str(bad)])
    assert result.exit_code == 1
    assert existing.read_text(encoding="utf-8") == "old\n"
    assert not (tmp_path / "bad.taskgraph.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.yaml",
        "good.taskgraph.json",
        "good.yaml",
    ]
    assert not (tmp_path / "good_flow.py").exists()


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    path = plan(tmp_path, "demo", "tasks:\n  - {id: a, type: noop}\n")
    blocker = tmp_path / "out"
    blocker.write_text("a file where a directory is needed\n", encoding="utf-8")
    result = runner.invoke(app, ["compile", str(path), "-o", str(blocker / "sub")])
    assert result.exit_code == 2
    assert "cannot write outputs" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_two_plans_with_one_name_collide_p2f210(tmp_path: Path) -> None:
    first = plan(tmp_path, "same", "tasks:\n  - {id: a, type: noop}\n", "first.yaml")
    second = plan(tmp_path, "same", "tasks:\n  - {id: b, type: noop}\n", "second.yaml")
    result = runner.invoke(app, ["compile", str(first), str(second)])
    assert result.exit_code == 1
    assert f"{second}:3:18: P2F210 error: plan name 'same' collides with the plan in {first}" in (
        result.stderr
    )
    assert not list(tmp_path.glob("*.json"))


def test_json_format_lists_every_plan(tmp_path: Path) -> None:
    bad = INVALID / "unknown-dependency.yaml"
    result = runner.invoke(app, ["validate", "--format", "json", str(HELLO), str(bad)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    by_file = {entry["file"]: entry for entry in report["plans"]}
    assert by_file[str(HELLO)]["ok"] is True
    assert by_file[str(HELLO)]["hash"].startswith("sha256:")
    bad_entry = by_file[str(bad)]
    assert bad_entry["ok"] is False
    assert [d["code"] for d in bad_entry["diagnostics"]] == ["P2F202", "P2F202"]
    first = bad_entry["diagnostics"][0]
    assert first["line"] == 13 and first["column"] == 18
    assert first["pointer"] == "/tasks/1/depends_on/0"
    assert first["hint"] == "did you mean 'extract'?"
    assert first["severity"] == "error"


def test_sarif_format_has_rules_results_and_related_locations() -> None:
    path = INVALID / "cycle.yaml"
    result = runner.invoke(app, ["validate", "--format", "sarif", str(path)])
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert {"P2F301", "P2F302", "P2F001"} <= rule_ids
    (finding,) = run["results"]
    assert finding["ruleId"] == "P2F301"
    assert finding["level"] == "error"
    region = finding["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (7, 44)
    assert len(finding["relatedLocations"]) == 3
    assert finding["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": path.relative_to(Path.cwd()).as_posix(),
        "uriBaseId": "%SRCROOT%",
    }


def test_sarif_warning_level(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "-f", "sarif", str(INVALID / "disconnected.yaml")])
    assert result.exit_code == 0
    (finding,) = json.loads(result.stdout)["runs"][0]["results"]
    assert finding["level"] == "warning"


def test_metrics_file_in_prometheus_text_format(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics" / "plan2flow.prom"
    bad = INVALID / "several-errors.yaml"
    result = runner.invoke(
        app, ["validate", str(FACTORY), str(bad), "--metrics-file", str(metrics)]
    )
    assert result.exit_code == 1
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.read_text(encoding="utf-8"))
        for sample in family.samples
    }
    assert samples[("plan2flow_compile_tasks", (("plan", "inventory-service"),))] == 14
    assert samples[("plan2flow_compile_edges", (("plan", "inventory-service"),))] == 30
    assert samples[("plan2flow_compile_plans", (("outcome", "ok"),))] == 1
    assert samples[("plan2flow_compile_plans", (("outcome", "invalid"),))] == 1
    assert samples[("plan2flow_compile_diagnostics", (("code", "P2F106"), ("severity", "error")))]
    stages = {
        dict(labels)["stage"]
        for (name, labels) in samples
        if name == "plan2flow_compile_stage_seconds" and dict(labels)["plan"] == "inventory-service"
    }
    assert stages == {"load", "validate", "decompose", "link", "graph", "codegen"}


def test_schema_command_prints_and_writes_the_schema(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0
    committed = (ROOT / "schemas" / "plan.schema.json").read_text(encoding="utf-8")
    assert printed.stdout == committed
    target = tmp_path / "plan.schema.json"
    written = runner.invoke(app, ["schema", "-o", str(target)])
    assert written.exit_code == 0
    assert target.read_text(encoding="utf-8") == committed


def test_version_option() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("plan2flow ")


@pytest.mark.slow
def test_console_script_runs_in_a_real_process(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "plan2flow"
    done = subprocess.run(
        [str(script), "compile", str(HELLO), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hello.taskgraph.json").exists()


@pytest.mark.parametrize("case", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_no_invalid_example_produces_a_traceback(case: Path) -> None:
    result = runner.invoke(app, ["compile", "--strict", str(case), "-o", "/nonexistent/never"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_json_format_gives_each_task_its_source_line() -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(HELLO)])
    (entry,) = json.loads(result.stdout)["plans"]
    assert [(t["task"], t["line"], t["rule"]) for t in entry["tasks"]] == [
        ("greet", 15, "task"),
        ("count", 22, "task"),
        ("done", 28, "task"),
    ]


def test_flow_module_names_collide_too(tmp_path: Path) -> None:
    first = plan(tmp_path, "a-b", "tasks:\n  - {id: a, type: noop}\n", "first.yaml")
    second = plan(tmp_path, "a--b", "tasks:\n  - {id: b, type: noop}\n", "second.yaml")
    result = runner.invoke(app, ["compile", str(first), str(second), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "P2F210" in result.stderr and "a_b_flow.py" in result.stderr
    assert not (tmp_path / "o").exists()
