"""Checks on the plan as a whole: it runs something, and its parameters are well-typed."""

from __future__ import annotations

import keyword
from typing import Any

from ..errors import Diagnostic, diagnostic
from ..spec import ParamSpec, PlanSpec
from .schema import json_type

ACCEPTED_TYPES = {
    "string": ("string",),
    "integer": ("integer",),
    "number": ("integer", "number"),
    "boolean": ("boolean",),
    "array": ("list",),
    "object": ("mapping",),
}
"""Parameter type → the JSON types (as :func:`json_type` names them) its default may have."""


def _param_problems(name: str, param: ParamSpec) -> list[Diagnostic]:
    pointer = f"/params/{name}"
    problems = []
    if keyword.iskeyword(name):
        problems.append(
            diagnostic(
                "P2F105",
                f"parameter name '{name}' is a Python keyword",
                pointer,
                hint="parameters become flow arguments: rename it",
                on_key=True,
            )
        )
    values = []
    if "default" in param.model_fields_set:
        values.append(("default", param.default, f"{pointer}/default"))
    values.extend(("enum value", v, f"{pointer}/enum/{i}") for i, v in enumerate(param.enum or []))
    for what, value, where in values:
        if value is not None and json_type(value) not in ACCEPTED_TYPES[param.type]:
            problems.append(
                diagnostic(
                    "P2F107",
                    f"{what} of parameter '{name}' is {json_type(value)} {value!r}, "
                    f"but its type is {param.type}",
                    where,
                )
            )
    if (
        param.enum is not None
        and "default" in param.model_fields_set
        and param.default not in param.enum
    ):
        problems.append(
            diagnostic(
                "P2F107",
                f"default of parameter '{name}' is not one of its enum values",
                f"{pointer}/default",
            )
        )
    return problems


def check_plan(spec: PlanSpec, data: dict[str, Any]) -> list[Diagnostic]:
    problems = []
    for name, param in sorted(spec.params.items()):
        problems.extend(_param_problems(name, param))
    if not any(data.get(key) for key in ("tasks", "components", "delivery")):
        problems.append(
            diagnostic(
                "P2F108",
                "the plan defines no tasks",
                "/tasks" if "tasks" in data else "",
                hint="add 'tasks' (or 'components')",
            )
        )
    return problems
