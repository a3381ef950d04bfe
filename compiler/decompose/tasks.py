"""Rule `task`: every written task becomes one node."""

from __future__ import annotations

from ..errors import Diagnostic
from ..load import DEFAULT_LIMITS, Limits
from ..validate.schema import ValidatedPlan
from .nodes import Origin, TaskNode, make_node


def nodes_from_tasks(
    plan: ValidatedPlan, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[TaskNode], list[Diagnostic]]:
    defaults = plan.spec.defaults
    nodes = []
    for task, pointer in zip(plan.spec.tasks, plan.task_pointers, strict=True):
        nodes.append(
            make_node(
                id=task.id,
                type=task.type,
                step=task,
                defaults=defaults,
                pointer=pointer,
                origin=Origin("task", f"tasks[{task.id}]", pointer),
                params=task.params.model_dump(mode="json"),
                outputs=task.outputs,
                matrix_axes=task.matrix,
                matrix_pointer=f"{pointer}/matrix",
                escalation=getattr(task, "escalation", None),
            )
        )
    return nodes, []
