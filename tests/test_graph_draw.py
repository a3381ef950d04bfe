"""`plan2flow graph` and the renderers behind it: Mermaid and DOT text, SVG/PNG through Graphviz.

The pictures of every example plan are golden files (``tests/golden/review/<case>/graph.mmd``,
``graph.dot``); update them with ``pytest tests/test_graph_draw.py --snapshot-update``.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.compiler import TaskGraphError, compile_plan, parse_taskgraph
from plan2flow.compiler.review.draw import SHAPES, Mark, dot, mermaid
from plan2flow.compiler.spec.tasks import TASK_TYPES

from golden_files import golden_file

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
HELLO = ROOT / "examples" / "plans" / "hello.yaml"
FACTORY = ROOT / "examples" / "plans" / "software-factory.yaml"
PLAN2FLOW = str(Path(sys.executable).parent / "plan2flow")
GRAPHVIZ = shutil.which("dot")
needs_graphviz = pytest.mark.skipif(GRAPHVIZ is None, reason="Graphviz 'dot' is not installed")

runner = CliRunner()


def _document(plan: Path) -> dict[str, Any]:
    document: dict[str, Any] = compile_plan(plan.read_bytes(), plan.name).graph.document
    return document


def _task(task_id: str, task_type: str = "shell", component: str | None = None) -> dict[str, Any]:
    return {"id": task_id, "type": task_type, "component": component}


def _edge(source: str, target: str, *artifacts: str) -> dict[str, Any]:
    return {"from": source, "to": target, "artifacts": list(artifacts)}


# --- golden pictures of the examples -------------------------------------------------------------


@pytest.mark.parametrize("plan", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_pictures_match_golden_files(plan: Path, snapshot: SnapshotAssertion) -> None:
    document = _document(plan)
    assert mermaid(document) == snapshot.use_extension(golden_file(f"review/{plan.stem}/graph.mmd"))
    assert dot(document) == snapshot.use_extension(golden_file(f"review/{plan.stem}/graph.dot"))


def test_hello_in_mermaid_exactly() -> None:
    assert mermaid(_document(HELLO)) == (
        "flowchart LR\n"
        '  t_greet["greet"]\n'
        '  t_count["count"]\n'
        '  t_done(["done"])\n'
        "  t_count --> t_done\n"
        '  t_greet -->|"greeting"| t_count\n'
    )


def test_hello_in_dot_exactly() -> None:
    assert dot(_document(HELLO)) == (
        'digraph "hello" {\n'
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];\n'
        '  node [fontname="Helvetica", fontsize=10];\n'
        '  edge [fontname="Helvetica", fontsize=9];\n'
        '  t_greet [label="greet", shape=box];\n'
        '  t_count [label="count", shape=box];\n'
        '  t_done [label="done", shape=ellipse];\n'
        "  t_count -> t_done;\n"
        '  t_greet -> t_count [label="greeting"];\n'
        "}\n"
    )


def test_components_become_subgraphs_and_clusters() -> None:
    document = _document(FACTORY)
    picture, graph = mermaid(document), dot(document)
    for component in ("models", "report", "stock"):
        assert f'  subgraph c_{component} ["{component}"]\n' in picture
        assert f'  subgraph cluster_c_{component} {{\n    label="{component}";\n' in graph
    assert '    t_models_test[["models.test"]]\n' in picture
    assert '  t_assemble[/"assemble"\\]\n' in picture
    assert '  t_notify["notify"]\n' in picture


def test_every_task_type_has_its_own_shape() -> None:
    types = sorted(SHAPES)
    assert types == sorted(TASK_TYPES)
    mermaid_shapes = {(s.mermaid_open, s.mermaid_close) for s in SHAPES.values()}
    dot_shapes = {(s.dot_shape, s.dot_style, s.dot_peripheries) for s in SHAPES.values()}
    assert len(mermaid_shapes) == len(dot_shapes) == len(types)


def test_an_unknown_type_is_drawn_as_a_rectangle() -> None:
    document = {"tasks": [_task("a", "future_type")], "edges": []}
    assert '  t_a["a"]\n' in mermaid(document)
    assert '  t_a [label="a", shape=box];\n' in dot(document)


# --- ids and escaping ---------------------------------------------------------------------------


ODD: dict[str, Any] = {
    "tasks": [
        _task('say"hi"', "shell", component='team "a"'),
        _task("stock.test[python=3.11]", "test", component='team "a"'),
        _task("issue#1", "python"),
        _task("a<b>&c", "noop"),
        _task("pipe|tick`", "shell"),
        _task("back\\slash", "shell"),
        _task("a.b", "shell"),
        _task("a_b", "shell"),
        _task("a-b_2", "shell"),
    ],
    "edges": [
        _edge('say"hi"', "stock.test[python=3.11]", 'out"1', "x|y"),
        _edge("issue#1", "a<b>&c"),
        _edge("a.b", "a_b"),
        _edge("a_b", "a-b_2", "z"),
    ],
    "plan": {"name": 'odd "plan"\\'},
}


def test_odd_ids_are_escaped_in_mermaid() -> None:
    assert mermaid(ODD) == (
        "flowchart LR\n"
        '  subgraph c_team_a ["team #34;a#34;"]\n'
        '    t_say_hi["say#34;hi#34;"]\n'
        '    t_stock_test_python_3_11[["stock.test#91;python=3.11#93;"]]\n'
        "  end\n"
        '  t_issue_1("issue#35;1")\n'
        '  t_a_b_c(["a#60;b#62;#38;c"])\n'
        '  t_pipe_tick["pipe#124;tick#96;"]\n'
        '  t_back_slash["back#92;slash"]\n'
        '  t_a_b["a.b"]\n'
        '  t_a_b_2["a_b"]\n'
        '  t_a_b_2_2["a-b_2"]\n'
        "  t_a_b --> t_a_b_2\n"
        '  t_a_b_2 -->|"z"| t_a_b_2_2\n'
        "  t_issue_1 --> t_a_b_c\n"
        '  t_say_hi -->|"out#34;1, x#124;y"| t_stock_test_python_3_11\n'
    )


def test_odd_ids_are_escaped_in_dot() -> None:
    assert dot(ODD) == (
        'digraph "odd \\"plan\\"\\\\" {\n'
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];\n'
        '  node [fontname="Helvetica", fontsize=10];\n'
        '  edge [fontname="Helvetica", fontsize=9];\n'
        "  subgraph cluster_c_team_a {\n"
        '    label="team \\"a\\"";\n'
        '    t_say_hi [label="say\\"hi\\"", shape=box];\n'
        '    t_stock_test_python_3_11 [label="stock.test[python=3.11]", shape=box, '
        "peripheries=2];\n"
        "  }\n"
        '  t_issue_1 [label="issue#1", shape=box, style="rounded"];\n'
        '  t_a_b_c [label="a<b>&c", shape=ellipse];\n'
        '  t_pipe_tick [label="pipe|tick`", shape=box];\n'
        '  t_back_slash [label="back\\\\slash", shape=box];\n'
        '  t_a_b [label="a.b", shape=box];\n'
        '  t_a_b_2 [label="a_b", shape=box];\n'
        '  t_a_b_2_2 [label="a-b_2", shape=box];\n'
        "  t_a_b -> t_a_b_2;\n"
        '  t_a_b_2 -> t_a_b_2_2 [label="z"];\n'
        "  t_issue_1 -> t_a_b_c;\n"
        '  t_say_hi -> t_stock_test_python_3_11 [label="out\\"1, x|y"];\n'
        "}\n"
    )


@needs_graphviz
def test_graphviz_reads_the_escaped_labels_back() -> None:
    """What Graphviz draws is the task ids, character for character."""
    assert GRAPHVIZ is not None
    svg = subprocess.run(
        [GRAPHVIZ, "-Tsvg"], input=dot(ODD), capture_output=True, text=True, check=True
    ).stdout
    drawn = {html.unescape(text) for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)}
    assert drawn == {task["id"] for task in ODD["tasks"]} | {'team "a"', 'out"1, x|y', "z"}


def test_node_ids_stay_unique_whatever_the_ids() -> None:
    ids = ["a.b", "a_b", "a[b]", "a b", "a_b_2", "", "[]", "ü"]
    document = {"tasks": [_task(i) for i in ids], "edges": []}
    nodes = [line.split("[", 1)[0].strip() for line in mermaid(document).splitlines()[1:]]
    assert nodes == ["t_a_b", "t_a_b_2", "t_a_b_3", "t_a_b_4", "t_a_b_2_2", "t_", "t__2", "t__3"]


def test_the_text_depends_on_the_graph_not_on_the_order_of_edges_or_keys() -> None:
    document = _document(FACTORY)
    shuffled = json.loads(json.dumps(document))
    random.Random(7).shuffle(shuffled["edges"])
    shuffled["tasks"] = [dict(reversed(list(t.items()))) for t in shuffled["tasks"]]
    for edge in shuffled["edges"]:
        edge["artifacts"].reverse()
    assert mermaid(shuffled) == mermaid(document)
    assert dot(shuffled) == dot(document)


# --- marks --------------------------------------------------------------------------------------


MARKED: dict[str, Any] = {
    "tasks": [_task("a"), _task("b", "python", "core"), _task("c"), _task("d"), _task("e")],
    "edges": [_edge("a", "b", "x"), _edge("b", "c"), _edge("c", "d"), _edge("d", "e")],
    "plan": {"name": "marked"},
}


def test_marks_in_mermaid_are_classes_with_a_legend() -> None:
    marks: dict[str, Mark] = {
        "b": "changed",
        "c": "removed",
        "a": "added",
        "d": "impacted",
        "e": "impacted",
    }
    assert mermaid(MARKED, marks) == (
        "flowchart LR\n"
        '  subgraph c_core ["core"]\n'
        '    t_b("b")\n'
        "  end\n"
        '  t_a["a"]\n'
        '  t_c["c"]\n'
        '  t_d["d"]\n'
        '  t_e["e"]\n'
        '  t_a -->|"x"| t_b\n'
        "  t_b -.-> t_c\n"
        "  t_c -.-> t_d\n"
        "  t_d --> t_e\n"
        '  subgraph legend ["legend"]\n'
        '    legend_added["added"]\n'
        '    legend_removed["removed"]\n'
        '    legend_changed["changed"]\n'
        '    legend_impacted["impacted"]\n'
        "  end\n"
        "  classDef added fill:#e6ffec,stroke:#1a7f37,stroke-width:2px\n"
        "  classDef removed fill:#ffebe9,stroke:#cf222e,stroke-width:2px,"
        "stroke-dasharray:5 5\n"
        "  classDef changed fill:#fff8c5,stroke:#9a6700,stroke-width:2px\n"
        "  classDef impacted fill:#ddf4ff,stroke:#0969da,stroke-width:2px,"
        "stroke-dasharray:2 2\n"
        "  class t_a,legend_added added\n"
        "  class t_c,legend_removed removed\n"
        "  class t_b,legend_changed changed\n"
        "  class t_d,t_e,legend_impacted impacted\n"
    )


def test_marks_in_dot_are_fill_and_line_styles_with_a_legend() -> None:
    marks: dict[str, Mark] = {"b": "removed", "d": "impacted"}
    assert dot(MARKED, marks) == (
        'digraph "marked" {\n'
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11];\n'
        '  node [fontname="Helvetica", fontsize=10];\n'
        '  edge [fontname="Helvetica", fontsize=9];\n'
        "  subgraph cluster_c_core {\n"
        '    label="core";\n'
        '    t_b [label="b", shape=box, fillcolor="#ffebe9", color="#cf222e", penwidth=2, '
        'style="rounded,filled,dashed"];\n'
        "  }\n"
        '  t_a [label="a", shape=box];\n'
        '  t_c [label="c", shape=box];\n'
        '  t_d [label="d", shape=box, fillcolor="#ddf4ff", color="#0969da", penwidth=2, '
        'style="filled,dotted"];\n'
        '  t_e [label="e", shape=box];\n'
        '  t_a -> t_b [label="x", style=dashed];\n'
        "  t_b -> t_c [style=dashed];\n"
        "  t_c -> t_d;\n"
        "  t_d -> t_e;\n"
        "  subgraph cluster_legend {\n"
        '    label="legend";\n'
        '    legend_removed [label="removed", shape=box, fillcolor="#ffebe9", color="#cf222e", '
        'penwidth=2, style="filled,dashed"];\n'
        '    legend_impacted [label="impacted", shape=box, fillcolor="#ddf4ff", '
        'color="#0969da", penwidth=2, style="filled,dotted"];\n'
        "  }\n"
        "}\n"
    )


def test_added_and_changed_marks_fill_without_changing_the_line() -> None:
    marks: dict[str, Mark] = {"a": "added", "b": "changed"}
    graph = dot(MARKED, marks)
    assert (
        '  t_a [label="a", shape=box, fillcolor="#e6ffec", color="#1a7f37", penwidth=2, '
        'style="filled"];\n' in graph
    )
    assert 'fillcolor="#fff8c5", color="#9a6700", penwidth=2, style="rounded,filled"];\n' in graph
    assert "style=dashed" not in graph
    picture = mermaid(MARKED, marks)
    assert picture.endswith("  class t_a,legend_added added\n  class t_b,legend_changed changed\n")
    assert "legend_removed" not in picture and "-.->" not in picture


@pytest.mark.parametrize("marks", [None, {}])
def test_no_marks_no_legend_no_classes(marks: dict[str, Any] | None) -> None:
    assert "legend" not in mermaid(MARKED, marks)
    assert "classDef" not in mermaid(MARKED, marks)
    assert "legend" not in dot(MARKED, marks)
    assert "fillcolor" not in dot(MARKED, marks)


def test_a_mark_on_a_task_not_in_the_graph_is_refused() -> None:
    with pytest.raises(ValueError, match="marks name tasks that are not in the graph: gone, x"):
        mermaid(MARKED, {"x": "removed", "gone": "removed", "a": "added"})
    with pytest.raises(ValueError, match="not in the graph: gone"):
        dot(MARKED, {"gone": "removed"})


def test_an_edge_to_a_task_not_in_the_graph_is_refused() -> None:
    document = {"tasks": [_task("a")], "edges": [_edge("a", "ghost")]}
    with pytest.raises(ValueError, match="an edge names a task that is not in the graph: ghost"):
        mermaid(document)


def test_a_repeated_task_id_is_refused() -> None:
    document = {"tasks": [_task("a"), _task("a")], "edges": []}
    with pytest.raises(ValueError, match="two tasks with the id a"):
        dot(document)


def test_a_document_without_plan_name_is_drawn_as_taskgraph() -> None:
    assert dot({"tasks": [], "edges": [], "plan": None}).startswith('digraph "taskgraph" {\n')
    assert dot({"tasks": [], "edges": [], "plan": "x"}).startswith('digraph "taskgraph" {\n')
    assert mermaid({"tasks": [], "edges": []}) == "flowchart LR\n"


# --- reading TaskGraph files --------------------------------------------------------------------


def test_a_compiled_graph_parses_back_to_its_document() -> None:
    result = compile_plan(FACTORY.read_bytes(), FACTORY.name)
    assert parse_taskgraph(result.graph.text) == result.graph.document
    assert parse_taskgraph(result.graph.text.encode("utf-8")) == result.graph.document


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"\xff\xfe", "not UTF-8 text"),
        ("{", "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
        ("[]", "kind is not 'TaskGraph'"),
        ('{"kind": "Plan"}', "kind is not 'TaskGraph'"),
        ('{"kind": "TaskGraph", "edges": []}', "'tasks' is not a list"),
        ('{"kind": "TaskGraph", "tasks": [1], "edges": []}', "tasks[0] is not an object"),
        ('{"kind": "TaskGraph", "tasks": [{"type": "x"}]}', "tasks[0].id is not a string"),
        ('{"kind": "TaskGraph", "tasks": [{"id": "a", "type": 3}]}', "tasks[0].type is not"),
        (
            '{"kind": "TaskGraph", "tasks": [{"id": "a", "type": "x", "component": 1}]}',
            "tasks[0].component is neither a string nor null",
        ),
        (
            '{"kind": "TaskGraph", "tasks": [{"id": "a", "type": "x"}, {"id": "a", "type": "y"}]}',
            "tasks[1].id repeats the id 'a'",
        ),
        ('{"kind": "TaskGraph", "tasks": [], "edges": {}}', "'edges' is not a list"),
        ('{"kind": "TaskGraph", "tasks": [], "edges": [[]]}', "edges[0] is not an object"),
        (
            '{"kind": "TaskGraph", "tasks": [{"id": "a", "type": "x"}], '
            '"edges": [{"from": "a", "to": ["a"]}]}',
            "edges[0].to names no task of the graph",
        ),
        (
            '{"kind": "TaskGraph", "tasks": [{"id": "a", "type": "x"}], '
            '"edges": [{"from": "b", "to": "a"}]}',
            "edges[0].from names no task of the graph",
        ),
        (
            '{"kind": "TaskGraph", "tasks": [{"id": "a", "type": "x"}], '
            '"edges": [{"from": "a", "to": "a", "artifacts": [1]}]}',
            "edges[0].artifacts is not a list of names",
        ),
    ],
)
def test_what_is_not_a_taskgraph_says_why(text: str | bytes, reason: str) -> None:
    with pytest.raises(TaskGraphError) as caught:
        parse_taskgraph(text)
    assert str(caught.value).startswith(f"not a TaskGraph ({reason}")


# --- the command --------------------------------------------------------------------------------


def _compiled_graph(tmp_path: Path, plan: Path) -> Path:
    result = runner.invoke(app, ["compile", str(plan), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return next(tmp_path.glob("*.taskgraph.json"))


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("plan", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_a_plan_and_its_compiled_graph_draw_the_same(tmp_path: Path, plan: Path, fmt: str) -> None:
    from_plan = runner.invoke(app, ["graph", str(plan), "--format", fmt])
    from_graph = runner.invoke(app, ["graph", str(_compiled_graph(tmp_path, plan)), "-f", fmt])
    assert from_plan.exit_code == from_graph.exit_code == 0, from_plan.output + from_graph.output
    expected = mermaid(_document(plan)) if fmt == "mermaid" else dot(_document(plan))
    assert from_plan.stdout == from_graph.stdout == expected
    assert from_plan.stderr == from_graph.stderr == ""


def test_mermaid_is_the_default_format() -> None:
    result = runner.invoke(app, ["graph", str(HELLO)])
    assert result.exit_code == 0
    assert result.stdout == mermaid(_document(HELLO))


def test_output_goes_to_a_file_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "pictures" / "hello.dot"
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "dot", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8") == dot(_document(HELLO))
    assert sorted(p.name for p in target.parent.iterdir()) == ["hello.dot"]


def test_an_output_that_cannot_be_written_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    result = runner.invoke(app, ["graph", str(HELLO), "-o", str(blocker / "x.mmd")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"plan2flow: cannot write {blocker / 'x.mmd'}: ")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_an_invalid_plan_exits_1_with_located_diagnostics() -> None:
    plan = ROOT / "examples" / "plans" / "invalid" / "several-errors.yaml"
    result = runner.invoke(app, ["graph", str(plan)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{plan}:7:25: P2F106 error: unknown task type 'shel'" in result.stderr


def test_a_missing_plan_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["graph", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "P2F001 error: cannot read plan: No such file or directory" in result.stderr


def test_a_missing_graph_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.taskgraph.json"
    result = runner.invoke(app, ["graph", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"plan2flow: cannot read {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"kind": "Plan"}', "kind is not 'TaskGraph'"),
    ],
)
def test_a_json_file_that_is_not_a_taskgraph_exits_2(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "other.json"
    path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["graph", str(path)])
    assert result.exit_code == 2
    assert result.stderr == f"plan2flow: {path}: not a TaskGraph ({reason})\n"
    assert result.stdout == ""


def test_an_unknown_format_is_a_usage_error() -> None:
    result = runner.invoke(app, ["graph", str(HELLO), "--format", "gif"])
    assert result.exit_code == 2


# --- Graphviz -----------------------------------------------------------------------------------


@needs_graphviz
def test_svg_is_rendered_and_identical_every_time(tmp_path: Path) -> None:
    first, second = tmp_path / "a.svg", tmp_path / "b.svg"
    for target in (first, second):
        result = runner.invoke(app, ["graph", str(FACTORY), "-f", "svg", "-o", str(target)])
        assert result.exit_code == 0, result.output
    svg = first.read_bytes()
    assert svg.startswith(b"<?xml") and svg.rstrip().endswith(b"</svg>")
    assert b"stock.test[python=3.11]" in svg
    assert svg == second.read_bytes()
    to_stdout = runner.invoke(app, ["graph", str(FACTORY), "-f", "svg"])
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout.encode("utf-8") == svg


@needs_graphviz
def test_png_is_written_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "hello.png"
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "png", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_png_to_the_terminal_is_refused() -> None:
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "png"])
    assert result.exit_code == 2
    assert result.stderr == "plan2flow: --format png is binary: give a file with --output\n"


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_without_graphviz_svg_and_png_exit_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    target = tmp_path / f"hello.{fmt}"
    result = runner.invoke(app, ["graph", str(HELLO), "-f", fmt, "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"plan2flow: --format {fmt} needs Graphviz: 'dot' is not on PATH "
        "(install the graphviz package, or use --format dot)\n"
    )
    assert not target.exists()


def _fake_dot(tmp_path: Path, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "dot"
    program.write_text(script, encoding="utf-8")
    program.chmod(0o755)
    return program


def test_a_failing_dot_exits_2_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = _fake_dot(tmp_path, "#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 3\n")
    monkeypatch.setenv("PATH", str(program.parent))
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "svg"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"plan2flow: {program} -Tsvg failed (exit status 3): syntax error in line 1\n"
    )


def test_a_dot_that_cannot_start_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = _fake_dot(tmp_path, "#!/nonexistent/interpreter\n")
    monkeypatch.setenv("PATH", str(program.parent))
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "svg"])
    assert result.exit_code == 2
    assert result.stderr == f"plan2flow: cannot run {program}: No such file or directory\n"


def test_a_dot_that_fails_silently_still_gets_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = _fake_dot(tmp_path, "#!/bin/sh\nexit 1\n")
    monkeypatch.setenv("PATH", str(program.parent))
    result = runner.invoke(app, ["graph", str(HELLO), "-f", "svg"])
    assert result.exit_code == 2
    assert result.stderr.endswith("failed (exit status 1): no message\n")


@pytest.mark.slow
def test_the_picture_does_not_depend_on_the_hash_seed() -> None:
    outputs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [PLAN2FLOW, "graph", str(FACTORY), "-f", "dot"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        outputs.add(done.stdout)
    assert outputs == {dot(_document(FACTORY))}


def test_atomic_writes_take_bytes_and_leave_nothing_when_one_fails(tmp_path: Path) -> None:
    from plan2flow.compiler.files import write_all_atomic

    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(OSError):
        write_all_atomic([(tmp_path / "a.png", b"\x89PNG"), (blocker / "b.svg", "<svg/>")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    write_all_atomic([(tmp_path / "a.png", b"\x89PNG\xff"), (tmp_path / "b.txt", "é\n")])
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG\xff"
    assert (tmp_path / "b.txt").read_bytes() == "é\n".encode()
