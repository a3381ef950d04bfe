"""`plan2flow diff`: the semantic diff of two TaskGraphs, its three formats, and reading the sides
from files, TaskGraph JSON and git.

Golden files: ``tests/golden/review/diff/release/diff.{txt,md,json}`` for the reviewed pair in
``tests/review/`` and ``tests/golden/review/diff/<example>/self.{txt,md,json}`` for each example
plan against itself. Update with ``pytest tests/test_diff.py --snapshot-update``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.cli.sources import read_git, read_side
from plan2flow.compiler import compile_plan
from plan2flow.compiler.review.diff import (
    ABSENT,
    Change,
    Edge,
    EdgeChange,
    GraphDiff,
    Rename,
    TaskChange,
    compare_values,
    diff_graphs,
    empty_graph,
    field_path,
    find_renames,
)
from plan2flow.compiler.review.diff_format import format_json, format_markdown, format_text
from plan2flow.compiler.review.sources import SideData, SourceError, side_document, split_spec

from golden_files import golden_file

ROOT = Path(__file__).parents[1]
REVIEW = ROOT / "tests" / "review"
_HELLO_GRAPH = (ROOT / "tests" / "golden" / "valid" / "hello" / "taskgraph.json").read_bytes()
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
FORMATS = {"text": "txt", "markdown": "md", "json": "json"}

runner = CliRunner()


def _compile(text: str | bytes, name: str = "plan.yaml") -> dict[str, Any]:
    return compile_plan(text, name).graph.document


def _plan(tasks: str, name: str = "demo") -> str:
    return f"apiVersion: plan2flow/v1\nkind: Plan\nmetadata: {{name: {name}}}\ntasks:\n{tasks}"


def _diff(*args: str) -> Any:
    return runner.invoke(app, ["diff", *args])


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sides are given relative to the repository root, as in the golden files."""
    monkeypatch.chdir(ROOT)


# ------------------------------------------------------------------------------ golden files


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_reviewed_pair_matches_golden(fmt: str, at_root: None, snapshot: SnapshotAssertion) -> None:
    result = _diff("tests/review/base.yaml", "tests/review/head.yaml", "--format", fmt)
    assert result.exit_code == 1, result.output
    golden = golden_file(f"review/diff/release/diff.{FORMATS[fmt]}")
    assert result.stdout == snapshot.use_extension(golden)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("plan", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_against_itself_is_no_change(
    plan: Path, fmt: str, at_root: None, snapshot: SnapshotAssertion
) -> None:
    name = plan.relative_to(ROOT).as_posix()
    result = _diff(name, name, "--format", fmt)
    assert result.exit_code == 0, result.output
    golden = golden_file(f"review/diff/{plan.stem}/self.{FORMATS[fmt]}")
    assert result.stdout == snapshot.use_extension(golden)


# ------------------------------------------------------------------------- semantics


def test_reviewed_pair_is_understood() -> None:
    diff = diff_graphs(
        _compile((REVIEW / "base.yaml").read_bytes()), _compile((REVIEW / "head.yaml").read_bytes())
    )
    assert diff.added == ("docs", "typecheck")
    assert diff.removed == ("lint",)
    assert diff.renamed == (Rename("build", "package"),)
    assert [c.id for c in diff.changed] == ["test"]
    assert [c.path for c in diff.changed[0].changes] == [
        "depends_on",
        "inputs.lint_report",
        "inputs.types",
        "params.argv",
        "retries",
    ]
    assert diff.impacted == ("announce", "publish")
    assert diff.edges_removed == (Edge("fetch", "lint", ()), Edge("lint", "test", ("report",)))
    assert diff.artifacts_added == ("typecheck.report",)
    assert diff.artifacts_removed == ("lint.report",)
    assert diff.artifacts_changed == (
        TaskChange(
            "package.wheel",
            (Change("consumers", ["publish", "test"], ["docs", "publish", "test"]),),
        ),
    )
    assert [c.path for c in diff.top_level] == [
        "params.channel.default",
        "plan.version",
        "schedule",
    ]
    assert not diff.same
    assert diff.marks() == {
        "announce": "impacted",
        "docs": "added",
        "lint": "removed",
        "package": "changed",
        "publish": "impacted",
        "test": "changed",
        "typecheck": "added",
    }
    merged_ids = [task["id"] for task in diff.merged["tasks"]]
    assert merged_ids[-1] == "lint"
    assert {"artifacts": [], "from": "fetch", "to": "lint"} in diff.merged["edges"]
    assert "lint.report" in [a["id"] for a in diff.merged["artifacts"]]


def _shuffled_yaml(text: str) -> str:
    """The same plan written differently: tasks and components in reverse order, every mapping's
    keys reversed, order-free lists reversed, flow style, every string double-quoted."""

    def reshape(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: reshape(value[k], k) for k in reversed(list(value))}
        if isinstance(value, list):
            items = [reshape(item) for item in value]
            return items[::-1] if key in {"tasks", "components", "depends_on", "tags"} else items
        return value

    class Quoting(yaml.SafeDumper):
        pass

    def quoted(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')

    Quoting.add_representer(str, quoted)
    data = reshape(yaml.safe_load(text))
    return yaml.dump(data, Dumper=Quoting, sort_keys=False, default_flow_style=True, width=70)


@pytest.mark.parametrize("plan", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_moving_tasks_and_keys_around_is_no_change(plan: Path, tmp_path: Path) -> None:
    original = plan.read_text(encoding="utf-8")
    moved = tmp_path / plan.name
    moved.write_text(_shuffled_yaml(original), encoding="utf-8")
    before, after = yaml.safe_load(original), yaml.safe_load(moved.read_text(encoding="utf-8"))
    listed = next(key for key in ("tasks", "components") if len(before.get(key, [])) > 1)
    names = [item.get("id", item.get("name")) for item in before[listed]]
    assert [item.get("id", item.get("name")) for item in after[listed]] == names[::-1]
    assert list(after) == list(before)[::-1]
    assert moved.read_text(encoding="utf-8").startswith("{")

    result = _diff(str(plan), str(moved))

    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\nno changes\n")
    json_result = json.loads(_diff(str(plan), str(moved), "--format", "json").stdout)
    assert json_result["same"] is True


def test_changing_an_upstream_task_impacts_downstream_tasks_without_changing_them(
    tmp_path: Path,
) -> None:
    hello = ROOT / "examples" / "plans" / "hello.yaml"
    edited = tmp_path / "hello.yaml"
    edited.write_text(
        hello.read_text(encoding="utf-8").replace('"Hello, ', '"Hi, '), encoding="utf-8"
    )

    result = _diff(str(hello), str(edited), "--format", "json")

    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert [c["id"] for c in found["tasks"]["changed"]] == ["greet"]
    assert [c["path"] for c in found["tasks"]["changed"][0]["changes"]] == ["params.argv"]
    assert found["impacted"] == ["count", "done"]
    assert found["tasks"]["added"] == found["tasks"]["removed"] == []
    assert found["edges"] == {"added": [], "changed": [], "removed": []}


def test_identical_hash_means_unchanged_even_when_the_graph_hash_differs() -> None:
    """`origin` is outside the task hash: a task from another part of the plan is the same task."""
    base = _compile((REVIEW / "base.yaml").read_bytes())
    head = copy.deepcopy(base)
    head["tasks"][0]["origin"] = {"rule": "component", "source": "components[tools]"}
    head["hash"] = "sha256:" + "f" * 64

    diff = diff_graphs(base, head)

    assert diff.same
    text = format_markdown(diff, "a.yaml", "b.yaml")
    assert "differ only where the diff does not look (task origins)" in text
    assert "`sha256:3fdd3de69ec7` and `sha256:ffffffffffff`" in text


def test_chained_renames_are_found_below_each_other() -> None:
    base = _compile(_plan("  - {id: a, type: noop}\n  - {id: b, type: noop, depends_on: [a]}\n"))
    head = _compile(_plan("  - {id: x, type: noop}\n  - {id: y, type: noop, depends_on: [x]}\n"))

    assert find_renames(base, head) == {"a": "x", "b": "y"}
    diff = diff_graphs(base, head)
    assert diff.renamed == (Rename("a", "x"), Rename("b", "y"))
    assert diff.changed == diff.edges_added == diff.edges_removed == ()
    assert diff.marks() == {"x": "changed", "y": "changed"}


def test_lookalike_tasks_are_not_paired_by_guess() -> None:
    base = _compile(_plan("  - {id: a, type: noop}\n  - {id: b, type: noop}\n"))
    head = _compile(_plan("  - {id: c, type: noop}\n  - {id: d, type: noop}\n"))

    diff = diff_graphs(base, head)

    assert diff.renamed == ()
    assert diff.added == ("c", "d")
    assert diff.removed == ("a", "b")


def test_edge_carrying_other_artifacts_is_changed() -> None:
    producer = "  - {id: a, type: noop, outputs: [x, y]}\n"
    base = _compile(_plan(producer + "  - {id: b, type: noop, inputs: {x: a.x, y: a.y}}\n"))
    head = _compile(_plan(producer + "  - {id: b, type: noop, inputs: {x: a.x}}\n"))

    diff = diff_graphs(base, head)

    assert diff.edges_changed == (EdgeChange("a", "b", ("x", "y"), ("x",)),)
    assert diff.artifacts_changed == (TaskChange("a.y", (Change("consumers", ["b"], []),)),)
    text = format_text(diff, "base", "head")
    assert "~ a → b  artifacts: [x, y] → [x]\n" in text
    assert '    consumers: ["b"] → []\n' in text
    markdown = format_markdown(diff, "base", "head")
    assert "| `a` → `b` | changed | `[x, y]` → `[x]` |" in markdown
    assert '| `a.y` | changed | `consumers`: `["b"]` → `[]` |' in markdown
    found = json.loads(format_json(diff, "base", "head"))
    assert found["edges"]["changed"] == [{"from": "a", "new": ["x"], "old": ["x", "y"], "to": "b"}]


def test_values_compare_as_json_and_paths_quote_odd_keys() -> None:
    assert compare_values({"n": 1}, {"n": 1.0}) == [Change("n", 1, 1.0)]
    assert compare_values({"n": 1}, {"n": True}) == [Change("n", 1, True)]
    assert compare_values({"n": None}, {}) == [Change("n", None, ABSENT)]
    assert compare_values([1, 2], [2, 1]) == [Change("", [1, 2], [2, 1])]
    assert field_path(["env", "A.B", "x y", "ok"]) == 'env["A.B"]["x y"].ok'
    assert field_path(["9lives"]) == '["9lives"]'
    assert repr(ABSENT) == "ABSENT"


def test_plan_name_change_and_missing_sides_title_the_comment() -> None:
    base, head = (
        _compile(_plan("  - {id: a, type: noop}\n", "old")),
        _compile(_plan("  - {id: a, type: noop}\n", "new")),
    )
    renamed = format_markdown(diff_graphs(base, head), "x", "y")
    assert renamed.startswith("### plan2flow diff: `old` → `new`\n")
    added = format_markdown(diff_graphs(empty_graph(), head), "x", "y")
    assert added.startswith("### plan2flow diff: `new`\n")
    assert "| Graph hash | `(missing)` |" in added
    deleted = format_markdown(diff_graphs(base, empty_graph()), "x", "y")
    assert deleted.startswith("### plan2flow diff: `old`\n")
    nothing = format_markdown(diff_graphs(empty_graph(), empty_graph()), "x", "y")
    assert nothing.startswith("### plan2flow diff: (no plan)\n\nNo changes:")
    nameless = {**head, "plan": []}
    assert diff_graphs(nameless, nameless).head_name is None


def test_markdown_escapes_table_cells() -> None:
    base = _compile(_plan("  - {id: a, type: shell, params: {argv: [echo, 'a|b']}}\n"))
    head = _compile(_plan("  - {id: a, type: shell, params: {argv: [echo, '`x`', \"l1\\nl2\"]}}\n"))

    text = format_markdown(diff_graphs(base, head), "main:odd|name.yaml", "one\n\ntwo ``x``\n")

    assert '| `params.argv` | `["echo","a\\|b"]` | ``["echo","`x`","l1\\nl2"]`` |' in text
    assert "| Source | `main:odd\\|name.yaml` | `one`<br>``` two ``x`` ``` |" in text
    assert "<summary><code>a</code>: 1 field changed</summary>" in text


def test_text_colours_lines_by_kind_only_when_asked(tmp_path: Path) -> None:
    base, head = REVIEW / "base.yaml", REVIEW / "head.yaml"
    plain = _diff(str(base), str(head), "--color", "never").stdout
    auto = _diff(str(base), str(head)).stdout
    painted = _diff(str(base), str(head), "--color", "always").stdout
    assert "\x1b[" not in plain
    assert auto == plain
    assert "\x1b[32m+ docs\x1b[0m\n" in painted
    assert "\x1b[31m- lint\x1b[0m\n" in painted
    assert "\x1b[33m~ test\x1b[0m\n" in painted
    assert "\x1b[36m> build → package  (renamed)\x1b[0m\n" in painted
    assert "\x1b[34m* publish  (impacted: upstream changed)\x1b[0m\n" in painted
    assert "\x1b[1mtasks\x1b[0m\n" in painted
    assert "    retries: 1 → 3\n" in painted


@pytest.mark.slow
def test_output_is_the_same_under_any_hash_seed() -> None:
    outputs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "plan2flow"),
                "diff",
                "tests/review/base.yaml",
                "tests/review/head.yaml",
                "--format",
                "markdown",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1


# ------------------------------------------------------------------------- graph files and git


def _git(repo: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Reviewer",
        "GIT_AUTHOR_EMAIL": "reviewer@example.com",
        "GIT_COMMITTER_NAME": "Reviewer",
        "GIT_COMMITTER_EMAIL": "reviewer@example.com",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return done.stdout.decode()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with two commits of `plans/release.yaml` (base, then head) and its compiled
    graph; the current directory is its `plans/` folder."""
    root = tmp_path / "repo"
    plans = root / "plans"
    plans.mkdir(parents=True)
    _git(root, "init", "--quiet", "--initial-branch=main")
    for side in ("base", "head"):
        text = (REVIEW / f"{side}.yaml").read_bytes()
        (plans / "release.yaml").write_bytes(text)
        (plans / "release.taskgraph.json").write_text(
            compile_plan(text, "plans/release.yaml").graph.text, encoding="utf-8"
        )
        _git(root, "add", "--all")
        _git(root, "commit", "--quiet", "-m", side)
    monkeypatch.chdir(plans)
    return root


def _body(output: str) -> str:
    """The diff without its two header lines (they name the sides)."""
    return output.split("\n", 2)[2]


def test_rev_path_reads_the_committed_plan(repo: Path) -> None:
    from_git = _diff("HEAD~1:plans/release.yaml", "release.yaml")
    from_files = _diff(str(REVIEW / "base.yaml"), str(REVIEW / "head.yaml"))

    assert from_git.exit_code == 1, from_git.output
    assert from_git.stdout.startswith(
        "--- HEAD~1:plans/release.yaml  release  sha256:3fdd3de69ec7\n"
    )
    assert _body(from_git.stdout) == _body(from_files.stdout)
    relative = _diff("HEAD~1:./release.yaml", "HEAD:plans/release.yaml")
    assert _body(relative.stdout) == _body(from_files.stdout)
    assert _diff("HEAD:plans/release.yaml", "release.yaml").exit_code == 0


def test_taskgraph_files_diff_like_their_plans(repo: Path) -> None:
    from_graphs = _diff("HEAD~1:plans/release.taskgraph.json", "release.taskgraph.json")
    from_plans = _diff("HEAD~1:plans/release.yaml", "release.yaml")

    assert from_graphs.exit_code == 1
    assert _body(from_graphs.stdout) == _body(from_plans.stdout)
    mixed = _diff("release.taskgraph.json", "release.yaml")
    assert mixed.exit_code == 0


def test_a_file_with_a_colon_in_its_name_is_a_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v1:plan.yaml").write_bytes((REVIEW / "base.yaml").read_bytes())
    assert split_spec("v1:plan.yaml", exists=True) == (None, "v1:plan.yaml")

    result = _diff("v1:plan.yaml", str(REVIEW / "base.yaml"))

    assert result.exit_code == 0, result.output


def test_missing_ok_diffs_against_an_empty_graph(repo: Path) -> None:
    added = _diff("--missing-ok", "HEAD~1:plans/new.yaml", "release.yaml", "--format", "json")
    deleted = _diff("--missing-ok", "release.yaml", "gone.yaml", "--format", "json")

    assert added.exit_code == deleted.exit_code == 1
    found = json.loads(added.stdout)
    assert found["base"] == {"hash": None, "name": None, "source": "HEAD~1:plans/new.yaml"}
    assert found["tasks"]["added"] == [
        "announce",
        "docs",
        "fetch",
        "package",
        "publish",
        "test",
        "typecheck",
    ]
    assert json.loads(deleted.stdout)["tasks"]["removed"] == found["tasks"]["added"]
    bad_rev = _diff("--missing-ok", "nope:plans/new.yaml", "release.yaml")
    assert bad_rev.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml", "release.yaml"], "plan2flow: missing.yaml: no such file\n"),
        (["release.yaml", "."], "plan2flow: .: cannot read: Is a directory\n"),
        (
            ["nope:plans/release.yaml", "release.yaml"],
            "plan2flow: nope:plans/release.yaml: unknown revision 'nope'\n",
        ),
        (
            ["HEAD~1:plans/other.yaml", "release.yaml"],
            "plan2flow: HEAD~1:plans/other.yaml: 'plans/other.yaml' does not exist in 'HEAD~1'\n",
        ),
        (
            ["HEAD:plans", "release.yaml"],
            "plan2flow: HEAD:plans: not a file (a tree)\n",
        ),
        (
            [":plans/release.yaml", "release.yaml"],
            "plan2flow: :plans/release.yaml: '' is not a revision\n",
        ),
        (
            ["--missing-ok", "--", "-x:plans/release.yaml", "release.yaml"],
            "plan2flow: -x:plans/release.yaml: '-x' is not a revision\n",
        ),
    ],
    ids=["no-file", "directory", "bad-rev", "no-path-at-rev", "tree", "empty-rev", "option-rev"],
)
def test_bad_sides_exit_2_with_one_line(repo: Path, args: list[str], message: str) -> None:
    result = _diff(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message


def test_rev_path_outside_a_repository_exits_2(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    result = _diff("main:plan.yaml", str(REVIEW / "base.yaml"))
    assert result.exit_code == 2
    assert result.stderr.startswith("plan2flow: main:plan.yaml: not a git repository")
    assert "\n" not in result.stderr.rstrip("\n")


def test_rev_path_without_git_exits_2(repo: Path, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = _diff("HEAD~1:plans/release.yaml", "release.yaml")
    assert result.exit_code == 2
    assert result.stderr == "plan2flow: git is not installed (needed to read REV:path)\n"


def test_invalid_plan_on_either_side_shows_its_diagnostics_and_exits_2(repo: Path) -> None:
    broken = (REVIEW / "head.yaml").read_text(encoding="utf-8").replace("type: noop", "type: nop")
    Path("broken.yaml").write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("    type: nop") + 1

    result = _diff("release.yaml", "broken.yaml")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"broken.yaml:{line}:11: P2F106 error: unknown task type 'nop'\n"
        f"    |\n {line} |     type: nop\n"
    )
    assert result.stderr.endswith(
        "1 plan(s) checked: 1 error(s), 0 warning(s)\n"
        "plan2flow: broken.yaml: not a valid plan; nothing to compare\n"
    )
    _git(repo, "add", "plans/broken.yaml")
    _git(repo, "commit", "--quiet", "-m", "broken")
    from_git = _diff("HEAD:plans/broken.yaml", "release.yaml")
    assert from_git.exit_code == 2
    assert from_git.stderr.startswith(f"plans/broken.yaml:{line}:11: P2F106 error")
    assert "plan2flow: HEAD:plans/broken.yaml: not a valid plan" in from_git.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{", "not a TaskGraph (invalid JSON: Expecting property name enclosed in double quotes"),
        (b"\xff", "not a TaskGraph (not UTF-8 text)"),
        (b'{"kind": "Plan"}', "not a TaskGraph (kind is not 'TaskGraph')"),
        (
            _HELLO_GRAPH.replace(b'"depends_on":["greet"],', b""),
            "not a TaskGraph (tasks[1].depends_on is missing)",
        ),
        (
            _HELLO_GRAPH.replace(
                b'"artifacts": [\n    {"consumers":["count"],"id":"greet.greeting",'
                b'"name":"greeting","producer":"greet"}\n  ]',
                b'"artifacts": {}',
            ),
            "not a TaskGraph (artifacts is wrong: Input should be a valid list)",
        ),
        (
            _HELLO_GRAPH.replace(b'"retries":0,', b'"retries":"0",', 1),
            "not a TaskGraph (tasks[0].retries is wrong: Input should be a valid integer)",
        ),
        (
            _HELLO_GRAPH.replace(b"Hello", b"Howdy"),
            "the graph was edited after it was compiled (its content hashes to sha256:",
        ),
    ],
    ids=[
        "invalid-json",
        "not-utf8",
        "wrong-kind",
        "task-shape",
        "artifacts-shape",
        "type",
        "edited",
    ],
)
def test_bad_taskgraph_files_exit_2(tmp_path: Path, content: bytes, problem: str) -> None:
    graph = tmp_path / "x.taskgraph.json"
    graph.write_bytes(content)
    result = _diff(str(graph), str(graph))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"plan2flow: {graph}: {problem}")
    assert result.stderr.count("\n") == 1


def test_sources_resolve_sides_without_the_command_line(repo: Path) -> None:
    plans = repo / "plans"
    side = read_side("release.yaml", cwd=plans)
    assert side == SideData("release.yaml", "release.yaml", (plans / "release.yaml").read_bytes())
    assert read_side("HEAD~1:plans/x.yaml", missing_ok=True, cwd=repo).data is None
    assert read_git("HEAD~1", "plans/release.yaml", repo) == (REVIEW / "base.yaml").read_bytes()
    assert side_document(SideData("new", "new.yaml", None)) == empty_graph()
    with pytest.raises(SourceError, match="no such file"):
        read_side("x.yaml", cwd=plans)


def test_json_format_omits_absent_values_and_lists_renames() -> None:
    diff = GraphDiff(
        "sha256:a",
        "sha256:b",
        "p",
        "p",
        changed=(TaskChange("t", (Change("x", ABSENT, 1), Change("y", 2, ABSENT))),),
        renamed=(Rename("a", "b"),),
    )
    found = json.loads(format_json(diff, "l", "r"))
    assert found["tasks"]["changed"] == [
        {"changes": [{"new": 1, "path": "x"}, {"old": 2, "path": "y"}], "id": "t"}
    ]
    assert found["tasks"]["renamed"] == [{"new": "b", "old": "a"}]
    assert found["same"] is False


def test_documents_need_only_ids_and_hashes() -> None:
    """Fields the compiler always writes are optional to the pure diff, so hand-made documents
    (and other tools' graphs) compare too; references that are not strings are left alone."""
    base = {
        "tasks": [{"id": "a", "hash": "1"}, {"id": "b", "hash": "2", "inputs": {"x": 1}}],
        "edges": [],
        "artifacts": [],
    }
    head = {
        "tasks": [{"id": "c", "hash": "3"}, {"id": "b", "hash": "4", "inputs": {"x": 1}}],
        "edges": [],
        "artifacts": [],
    }

    diff = diff_graphs(base, head)

    assert diff.renamed == (Rename("a", "c"),)
    assert diff.impacted == ("b",)
    assert (diff.base_name, diff.head_hash) == (None, None)


def test_docs_show_the_real_outputs_of_the_reviewed_pair() -> None:
    diff = diff_graphs(
        _compile((REVIEW / "base.yaml").read_bytes()), _compile((REVIEW / "head.yaml").read_bytes())
    )
    comment = format_markdown(diff, "origin/main:plans/release.yaml", "plans/release.yaml")
    assert comment in (ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    text = format_text(diff, "main:plans/release.yaml", "plans/release.yaml")
    assert text in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
