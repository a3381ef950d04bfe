"""Which agent runs each task: a block type fixed by the task type, a block document chosen by
the task's ``agent``, else ``defaults.agents[type]``, else ``default``.

The compiler never imports Prefect: block type slugs come from this static table, which names the
Prefect Block types of ``plan2flow.agents``. Slugs are permanent server-side keys: never rename one.
"""

from __future__ import annotations

import dataclasses

from ..errors import Diagnostic, diagnostic
from ..spec import Defaults
from .nodes import TaskNode

AGENT_BLOCK_TYPES: dict[str, str] = {
    "assemble": "plan2flow-assembler",
    "deploy": "plan2flow-deployer",
    "generate_code": "plan2flow-code-generator",
    "package": "plan2flow-packager",
    "test": "plan2flow-tester",
    "validate": "plan2flow-validator",
}
"""Task type → agent block type slug. `shell`, `python` and `noop` run in the flow itself."""

DEFAULT_DOCUMENT = "default"


def resolve_agents(
    nodes: list[TaskNode], defaults: Defaults
) -> tuple[list[TaskNode], list[Diagnostic]]:
    problems = [
        diagnostic(
            "P2F208",
            f"task type '{task_type}' runs in the flow and has no agent",
            f"/defaults/agents/{task_type}",
            hint="agents serve: " + ", ".join(sorted(AGENT_BLOCK_TYPES)),
        )
        for task_type in sorted(defaults.agents)
        if task_type not in AGENT_BLOCK_TYPES
    ]
    resolved = []
    for node in nodes:
        if node.type not in AGENT_BLOCK_TYPES:
            if node.agent is not None:
                problems.append(
                    diagnostic(
                        "P2F208",
                        f"task '{node.id}' of type '{node.type}' runs in the flow and has no agent",
                        f"{node.origin.pointer}/agent",
                        hint="remove 'agent'; agents serve: "
                        + ", ".join(sorted(AGENT_BLOCK_TYPES)),
                    )
                )
            resolved.append(node)
            continue
        document = node.agent or defaults.agents.get(node.type) or DEFAULT_DOCUMENT  # type: ignore[call-overload]
        resolved.append(dataclasses.replace(node, agent=document))
    return resolved, problems
