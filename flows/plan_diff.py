"""On the first run of a changed deployment, the semantic diff against the version it replaced,
as a markdown artifact (``plan2flow-diff-<plan>``) on the run's page.

``plan2flow deploy`` keeps the graph it replaces beside the new one in the deployment's source
directory (``previous_graph_file_name``). A run that finds it publishes the diff unless the
latest diff artifact of the plan is already this version's: the first run publishes it, later
runs (on any worker) do not. The diff is the one ``plan2flow diff`` prints, with the marked
graph drawn as an image in place of Mermaid, which the classic Prefect UI does not render.
Nothing here ever fails a run: what goes wrong is logged.
"""

from __future__ import annotations

import logging

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from plan2flow.compiler import (
    TaskGraphError,
    diff_graphs,
    diff_markdown,
    previous_graph_file_name,
    read_taskgraph,
)

from .graph import Graph
from .graph_picture import graph_picture

LOGGER = logging.getLogger("plan2flow.runtime")


def diff_description(previous_hash: str, graph_hash: str) -> str:
    """The artifact's description; it names both versions, so a run can tell whether the
    diff of its version was published.

    >>> diff_description("sha256:aaaa", "sha256:bbbb")
    'Changes from sha256:aaaa to sha256:bbbb'
    """
    return f"Changes from {previous_hash} to {graph_hash}"


def diff_artifact(before: dict[str, object], after: dict[str, object], name: str) -> str:
    """``plan2flow diff``'s markdown of the two graphs, the marked picture drawn as an image."""
    diff = diff_graphs(before, after)
    text = diff_markdown(
        diff,
        "the version it replaces",
        "this version",
        picture=False,
    )
    if diff.same:
        return text
    picture = graph_picture(diff.merged, f"What changed in {name}", diff.marks())
    return text + "\n#### Graph\n\n" + picture + "\n"


def latest_description(key: str) -> str | None:
    """The description of the latest artifact under `key`, ``None`` when there is none."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            limit=1,
            sort=ArtifactSort.UPDATED_DESC,
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
        )
    return found[0].description if found else None


def publish_diff(graph: Graph, key: str) -> bool:
    """Publish the diff under `key` when this deployment version replaced another and no run
    published it yet; whether it was published."""
    kept = graph.path.with_name(previous_graph_file_name(graph.name))
    if not kept.exists():
        return False
    try:
        before = read_taskgraph(kept)
        after = read_taskgraph(graph.path)
        if before.hash == after.hash:
            return False
        description = diff_description(before.hash, after.hash)
        if latest_description(key) == description:
            return False
        create_markdown_artifact(
            markdown=diff_artifact(before.document, after.document, graph.name),
            key=key,
            description=description,
        )
    except TaskGraphError as error:
        LOGGER.warning("plan2flow: the previous graph of %s is unreadable: %s", graph.name, error)
        return False
    except Exception:
        LOGGER.exception("plan2flow: the diff artifact of %s was not created", graph.name)
        return False
    return True
