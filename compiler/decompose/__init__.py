"""Stage 3: a validated plan → task nodes, by an ordered list of deterministic rules.

Each rule turns one part of the plan into nodes (written tasks, components, delivery); then agents
are resolved, the size of the expansion is checked against the limits, and matrices expanded.
Every node records the rule that made it and where from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..errors import Diagnostic
from ..load import DEFAULT_LIMITS, Limits
from ..validate.schema import ValidatedPlan
from .agents import AGENT_BLOCK_TYPES, resolve_agents
from .budget import expansion_problems
from .components import nodes_from_components
from .delivery import nodes_from_delivery
from .matrix import expand_matrix
from .nodes import Dependency, Input, Origin, TaskNode
from .tasks import nodes_from_tasks

Rule = Callable[[ValidatedPlan, Limits], tuple[list[TaskNode], list[Diagnostic]]]

RULES: tuple[Rule, ...] = (nodes_from_tasks, nodes_from_components, nodes_from_delivery)


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """The plan's tasks, and for each matrix task the ids of its expansions."""

    nodes: list[TaskNode]
    expansions: dict[str, list[str]]


def decompose(
    plan: ValidatedPlan, limits: Limits = DEFAULT_LIMITS
) -> tuple[Decomposition, list[Diagnostic]]:
    """The plan's task nodes; none at all when a rule or the expansion is over a limit, since
    every later stage would only repeat the cost the limit refuses."""
    nodes: list[TaskNode] = []
    diagnostics: list[Diagnostic] = []
    for rule in RULES:
        made, found = rule(plan, limits)
        nodes.extend(made)
        diagnostics.extend(found)
    over = expansion_problems(nodes, limits)
    if over or any(d.code == "P2F105" for d in diagnostics):
        return Decomposition([], {}), [*diagnostics, *over]
    nodes, found = resolve_agents(nodes, plan.spec.defaults)
    diagnostics.extend(found)
    nodes, expansions, found = expand_matrix(nodes, frozenset(plan.spec.params))
    diagnostics.extend(found)
    return Decomposition(nodes, expansions), diagnostics


__all__ = [
    "AGENT_BLOCK_TYPES",
    "RULES",
    "Decomposition",
    "Dependency",
    "Input",
    "Origin",
    "TaskNode",
    "decompose",
]
