"""What a run shows on its page in the Prefect UI: the plan as a markdown artifact when the run
starts (name, graph hash, a picture of the graph, tasks by type, what each waits for, the
approvals and who answers them, the tasks that may escalate), and the outcome of every task as
a table artifact when it ends.

The Prefect UI renders markdown but not Mermaid: the picture is Graphviz's SVG as a markdown
image (:mod:`.graph_picture` says what the UI draws), and the table of tasks and the tasks
they wait for stays beside it. Nothing here ever fails a run: an artifact that cannot be
created is logged and the run goes on."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from .graph import Graph, GraphTask
from .graph_picture import graph_picture
from .plan_diff import publish_diff
from .summary import TaskSummary

LOGGER = logging.getLogger("plan2flow.runtime")
MAX_ROWS = 200
"""Rows of the plan's task table; a larger plan shows the first ones and says how many."""


def artifact_key(kind: str, plan: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``plan2flow-<kind>-<plan>``."""
    return re.sub(r"[^a-z0-9-]+", "-", f"plan2flow-{kind}-{plan}".lower()).strip("-")[:100]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _escalation_points(tasks: list[GraphTask]) -> list[str]:
    """The tasks whose result may escalate: their tiers, threshold and who answers a person's
    tier (docs/escalation.md)."""
    escalating = [task for task in tasks if task.escalation is not None]
    if not escalating:
        return []
    lines = [
        "## Escalation points",
        "",
        "| task | tiers | threshold | who answers the human tier |",
        "|---|---|---|---|",
    ]
    for task in escalating:
        policy = task.escalation or {}
        tiers = [next(iter(tier)) for tier in policy.get("tiers", [])]
        human = next((t["human"] for t in policy.get("tiers", []) if "human" in t), None)
        who = "-" if human is None else ", ".join(human.get("respondents") or []) or "anyone"
        lines.append(
            f"| `{_cell(task.id)}` | {' → '.join(tiers)} | {policy.get('threshold', '-')} "
            f"| {_cell(who)} |"
        )
    return [*lines, ""]


def plan_markdown(graph: Graph, picture: str = "") -> str:
    """The plan, as the run page shows it; `picture` is the graph's markdown image."""
    tasks = [graph.tasks[task_id] for task_id in graph.order]
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.type] = counts.get(task.type, 0) + 1
    lines = [
        f"# Plan `{graph.name}`",
        "",
        f"Graph `{graph.hash}`: {len(tasks)} tasks ("
        + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        + ").",
        "",
    ]
    if picture:
        lines += ["## Graph", "", picture, ""]
    approvals = [task for task in tasks if task.type == "approval"]
    if approvals:
        lines += [
            "## Approvals",
            "",
            "| task | options | who answers | mode |",
            "|---|---|---|---|",
        ]
        for task in approvals:
            options = ", ".join(task.params["options"])
            who = ", ".join(task.params["respondents"]) or "anyone"
            lines.append(f"| `{task.id}` | {options} | {who} | {task.params['mode']} |")
        lines.append("")
    lines += _escalation_points(tasks)
    lines += ["## Tasks", "", "| task | type | waits for |", "|---|---|---|"]
    for task in tasks[:MAX_ROWS]:
        waits = ", ".join(f"`{_cell(up)}`" for up in task.depends_on) or "-"
        lines.append(f"| `{_cell(task.id)}` | {task.type} | {waits} |")
    if len(tasks) > MAX_ROWS:
        lines.append(f"\n... and {len(tasks) - MAX_ROWS} more tasks (see the TaskGraph file).")
    return "\n".join(lines) + "\n"


def publish_plan(graph: Graph) -> None:
    """The plan's artifact; and on the first run of a changed deployment, the diff's."""
    try:
        document = json.loads(graph.path.read_text(encoding="utf-8"))
        picture = graph_picture(document, f"The graph of {graph.name}")
        create_markdown_artifact(
            markdown=plan_markdown(graph, picture),
            key=artifact_key("plan", graph.name),
            description=f"The plan {graph.name} ({graph.hash})",
        )
    except Exception:
        LOGGER.exception("plan2flow: the plan artifact of %s was not created", graph.name)
    publish_diff(graph, artifact_key("diff", graph.name))


def publish_outcome(plan: str, tasks: Iterable[TaskSummary]) -> None:
    rows = [
        {
            "task": task.id,
            "state": task.state,
            "duration": "" if task.duration_seconds is None else f"{task.duration_seconds:.2f}s",
            "attempts": task.attempts,
            "message": task.message,
        }
        for task in tasks
    ]
    try:
        create_table_artifact(
            table=rows, key=artifact_key("outcome", plan), description=f"Every task of {plan}"
        )
    except Exception:
        LOGGER.exception("plan2flow: the outcome artifact of %s was not created", plan)
