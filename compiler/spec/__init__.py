"""The PlanSpec v1 models: the one definition of what a plan may say.

``schemas/plan.schema.json`` is generated from these models
(``python -m plan2flow.compiler.schema``), and a test fails when the two drift apart.
"""

from __future__ import annotations

from .components import Component, Delivery
from .plan import Defaults, Metadata, ParamSpec, PlanSpec, Schedule
from .tasks import TASK_TYPES, Task, TaskBase

__all__ = [
    "TASK_TYPES",
    "Component",
    "Defaults",
    "Delivery",
    "Metadata",
    "ParamSpec",
    "PlanSpec",
    "Schedule",
    "Task",
    "TaskBase",
]
