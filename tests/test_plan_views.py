"""The graph's picture in the plan artifact (Graphviz's SVG as a markdown image: the Prefect UI
does not render Mermaid) and the semantic diff that the first run of a changed deployment
publishes, on the tests' real Prefect API."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from approvals_support import api_url
from support import need_service, plan_text

from plan2flow.compiler import compile_plan, graph_file_name, previous_graph_file_name
from plan2flow.compiler.review.diff import diff_graphs
from plan2flow.compiler.review.diff_format import format_markdown
from plan2flow.flows import graph_picture, plan_diff
from plan2flow.flows.graph import read_graph
from plan2flow.flows.plan_artifacts import artifact_key, plan_markdown

TASKS = "  - {id: build, type: noop}\n  - {id: ship, type: noop, depends_on: [build]}\n"
MORE = TASKS + "  - {id: announce, type: shell, depends_on: [ship], params: {argv: [echo]}}\n"
IMAGE = re.compile(r"!\[([^\]]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


def _document(tasks: str, name: str = "views") -> dict[str, Any]:
    return compile_plan(plan_text(name, tasks), "plan.yaml").graph.document


def _svg(markdown: str) -> str:
    found = IMAGE.search(markdown)
    assert found is not None, markdown[:300]
    return base64.b64decode(found.group(2)).decode("utf-8")


def _need_dot() -> None:
    need_service(shutil.which("dot") is not None, "graphviz's dot is not installed")


def test_the_picture_is_graphviz_svg_as_a_markdown_image() -> None:
    _need_dot()
    markdown = graph_picture.graph_picture(_document(TASKS), "The graph of views")
    assert markdown.startswith("![The graph of views](data:image/svg+xml;base64,")
    svg = _svg(markdown)
    assert "<svg" in svg and ">build</text>" in svg and ">ship</text>" in svg


def test_without_dot_or_for_a_huge_graph_the_artifact_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = _document(TASKS)
    many = {"tasks": [{"id": f"t{i}", "type": "noop"} for i in range(301)], "edges": []}
    assert graph_picture.graph_picture(many, "x") == (
        "_The graph has 301 tasks, over 300: it is not drawn here._"
    )
    assert graph_picture.graph_picture({"tasks": []}, "x") == "_The graph could not be drawn._"
    monkeypatch.setenv("PATH", "")
    assert graph_picture.graph_picture(document, "x") == (
        "_The graph is not drawn: Graphviz's `dot` is not installed where the flow runs._"
    )


def test_a_dot_failure_or_an_oversized_picture_is_no_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need_dot()
    svg, reason = graph_picture.render_svg("digraph {")
    assert svg is None and reason.startswith("`dot` failed: ")
    monkeypatch.setattr(graph_picture, "MAX_SVG_BYTES", 10)
    svg, reason = graph_picture.render_svg("digraph { a -> b }")
    assert svg is None and reason.endswith("bytes, over 10")


def test_the_plan_markdown_puts_the_picture_above_the_tables(tmp_path: Path) -> None:
    result = compile_plan(plan_text("views", TASKS), "plan.yaml")
    path = tmp_path / graph_file_name("views")
    path.write_text(result.graph.text, "utf-8")
    text = plan_markdown(read_graph(path), "![g](data:image/svg+xml;base64,AA==)")
    assert text.index("## Graph\n\n![g](") < text.index("## Tasks")
    assert "## Graph" not in plan_markdown(read_graph(path))


def test_the_diff_draws_its_marked_graph_as_an_image_not_mermaid() -> None:
    _need_dot()
    before, after = _document(TASKS), _document(MORE)
    assert "mermaid" not in format_markdown(diff_graphs(before, after), "a", "b", picture=False)
    text = plan_diff.diff_artifact(before, after, "views")
    assert "mermaid" not in text
    assert "| `announce` | added |" in text
    assert "#### Graph\n\n![What changed in views](" in text
    assert ">announce</text>" in _svg(text)
    same = plan_diff.diff_artifact(before, before, "views")
    assert "No changes" in same and "#### Graph" not in same


def _artifacts(key: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{api_url()}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [key]}}},
        timeout=30,
    )
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def _published(graph: Any, key: str) -> bool:
    """`publish_diff` in a flow run, as the runtime calls it (artifacts belong to runs)."""
    from prefect import flow

    @flow(name="plan-views-test")
    def publishing() -> bool:
        return plan_diff.publish_diff(graph, key)

    return bool(publishing())


@pytest.mark.usefixtures("prefect_api")
def test_the_diff_is_published_once_per_version(tmp_path: Path) -> None:
    name = f"views-{tmp_path.name[-12:].lower().replace('_', '-')}"
    before = compile_plan(plan_text(name, TASKS), "plan.yaml").graph
    after = compile_plan(plan_text(name, MORE), "plan.yaml").graph
    path = tmp_path / graph_file_name(name)
    path.write_text(after.text, "utf-8")
    graph = read_graph(path)
    key = artifact_key("diff", name)
    assert plan_diff.publish_diff(graph, key) is False  # no previous version kept
    kept = tmp_path / previous_graph_file_name(name)
    kept.write_text("{not json", "utf-8")
    assert plan_diff.publish_diff(graph, key) is False  # unreadable: logged, nothing published
    kept.write_text(before.text, "utf-8")
    assert _published(graph, key) is True
    assert _published(graph, key) is False  # the next run of the same version
    [artifact] = _artifacts(key)
    assert artifact["description"] == f"Changes from {before.hash} to {after.hash}"
    assert "| `announce` | added |" in artifact["data"]
    kept.write_text(after.text, "utf-8")
    assert plan_diff.publish_diff(graph, key) is False  # the same graph: nothing changed


def test_publishing_never_fails_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = compile_plan(plan_text("views", TASKS), "plan.yaml").graph
    after = compile_plan(plan_text("views", MORE), "plan.yaml").graph
    path = tmp_path / graph_file_name("views")
    path.write_text(after.text, "utf-8")
    (tmp_path / previous_graph_file_name("views")).write_text(before.text, "utf-8")

    def unreachable(key: str) -> str | None:
        raise httpx.ConnectError("no server")

    monkeypatch.setattr(plan_diff, "latest_description", unreachable)
    assert plan_diff.publish_diff(read_graph(path), "k") is False
    assert json.loads(path.read_text("utf-8"))["hash"] == after.hash
