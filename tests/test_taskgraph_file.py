"""The TaskGraph file contract: typed, read with its hash checked, written as both files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plan2flow.compiler import (
    TaskGraphDocument,
    TaskGraphError,
    compile_plan,
    flow_file_name,
    graph_file_name,
    output_files,
    read_taskgraph,
    write_outputs,
)

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))


@pytest.mark.parametrize("plan", EXAMPLES, ids=lambda p: p.stem)
def test_what_is_written_reads_back_the_same(plan: Path, tmp_path: Path) -> None:
    result = compile_plan(plan.read_bytes(), str(plan))
    module = write_outputs(result.graph, result.flow_source, tmp_path)
    assert module == tmp_path / flow_file_name(result.graph.name)
    assert module.read_text("utf-8") == result.flow_source
    path = tmp_path / graph_file_name(result.graph.name)
    assert read_taskgraph(path) == result.graph
    assert read_taskgraph(path.read_bytes()) == result.graph
    assert read_taskgraph(result.graph.text) == result.graph
    typed = TaskGraphDocument.of(result.graph.document)
    assert typed.plan.name == result.graph.name
    assert [task.id for task in typed.tasks] == [t["id"] for t in result.graph.tasks]
    assert typed.model_dump(mode="json", by_alias=True) == result.graph.document


def test_output_files_are_the_graph_then_the_module(tmp_path: Path) -> None:
    result = compile_plan((ROOT / "examples" / "plans" / "hello.yaml").read_bytes(), "hello.yaml")
    assert output_files(result.graph, "src", tmp_path) == [
        (tmp_path / "hello.taskgraph.json", result.graph.text),
        (tmp_path / "hello_flow.py", "src"),
    ]


def test_errors_name_the_file_and_say_why(tmp_path: Path) -> None:
    result = compile_plan((ROOT / "examples" / "plans" / "hello.yaml").read_bytes(), "hello.yaml")
    missing = tmp_path / "nowhere.taskgraph.json"
    with pytest.raises(TaskGraphError, match=f"^{missing}: cannot read: "):
        read_taskgraph(missing)
    edited = tmp_path / "edited.taskgraph.json"
    edited.write_text(result.graph.text.replace("Hello", "Howdy"), encoding="utf-8")
    with pytest.raises(TaskGraphError) as caught:
        read_taskgraph(edited)
    assert caught.value.label == str(edited)
    assert caught.value.reason.startswith("the graph was edited after it was compiled")
    extra = json.loads(result.graph.text)
    extra["tasks"][0]["surprise"] = 1
    with pytest.raises(TaskGraphError, match=r"tasks\[0\]\.surprise is wrong"):
        TaskGraphDocument.of(extra)
    with pytest.raises(TaskGraphError, match=r"^x: not a TaskGraph"):
        read_taskgraph(b"[]", label="x")
