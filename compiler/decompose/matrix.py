"""Rule `matrix`: a task with a matrix becomes one task per combination, ``test[python=3.12]``.

``${{ matrix.<axis> }}`` in a task's params is replaced by the combination's value at compile time.
``${{ params.<name> }}``, ``${{ inputs.<name> }}`` and ``${{ outputs.<name> }}`` are left for the
runtime (a plan parameter's value, an artifact's path), but must name a declared parameter, input or
output of the task. Anything else inside ``${{ }}`` is an error, so a typo never reaches a run.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any

from ..errors import Diagnostic, diagnostic
from ..spec.base import MatrixValue
from ..validate.suggest import Suggester, did_you_mean
from .nodes import TaskNode

RULE = "matrix"

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_REFERENCE = re.compile(r"^\s*(matrix|params|inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


def render_value(value: MatrixValue) -> str:
    """How a matrix value is written in ids and substituted into params.

    >>> render_value(True), render_value(3), render_value("3.12")
    ('true', '3', '3.12')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expanded_id(base: str, combination: tuple[tuple[str, MatrixValue], ...]) -> str:
    """``test[os=linux,python=3.12]``: axes sorted by name, so ids never depend on YAML order."""
    inside = ",".join(f"{axis}={render_value(value)}" for axis, value in combination)
    return f"{base}[{inside}]"


@dataclasses.dataclass(frozen=True)
class _Names:
    """What the template expressions of one task may refer to."""

    matrix: dict[str, str]
    params: frozenset[str]
    inputs: frozenset[str]
    outputs: frozenset[str]
    param_hints: Suggester
    """Shared by every task: the plan's parameters are one pool, however many tasks err."""

    def problem(self, namespace: str, name: str, pointer: str) -> Diagnostic | None:
        if namespace == "matrix":
            if name in self.matrix:
                return None
            return diagnostic(
                "P2F209",
                f"unknown matrix variable '{name}'",
                pointer,
                hint=did_you_mean(name, self.matrix)
                or ("this task has no matrix" if not self.matrix else None),
            )
        known = {"params": self.params, "inputs": self.inputs, "outputs": self.outputs}[namespace]
        if name in known:
            return None
        what = {"params": "plan parameter", "inputs": "input", "outputs": "output"}[namespace]
        declare = {
            "params": "declare it under the plan's 'params'",
            "inputs": "declare it under the task's 'inputs'",
            "outputs": "declare it under the task's 'outputs'",
        }[namespace]
        return diagnostic(
            "P2F209",
            f"unknown {what} '{name}'",
            pointer,
            hint=(self.param_hints if namespace == "params" else Suggester(known))(name) or declare,
        )


def _substitute(value: Any, pointer: str, names: _Names, problems: list[Diagnostic]) -> Any:
    if isinstance(value, str):
        if "${{" not in value:
            return value
        if value.count("${{") != len(_EXPRESSION.findall(value)):
            problems.append(
                diagnostic(
                    "P2F209",
                    f"unclosed template expression in {value!r}",
                    pointer,
                    hint="write expressions as ${{ namespace.name }}",
                )
            )

        def replace(match: re.Match[str]) -> str:
            reference = _REFERENCE.match(match.group(1))
            if reference is None:
                problems.append(
                    diagnostic(
                        "P2F209",
                        f"unknown template expression '{match.group(0)}'",
                        pointer,
                        hint="use ${{ matrix.<axis> }}, ${{ params.<name> }}, "
                        "${{ inputs.<name> }} or ${{ outputs.<name> }}",
                    )
                )
                return match.group(0)
            namespace, name = reference.groups()
            problem = names.problem(namespace, name, pointer)
            if problem is not None:
                problems.append(problem)
            elif namespace == "matrix":
                return names.matrix[name]
            return match.group(0)

        return _EXPRESSION.sub(replace, value)
    if isinstance(value, list):
        return [
            _substitute(item, f"{pointer}/{i}", names, problems) for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            key: _substitute(item, f"{pointer}/{key}", names, problems)
            for key, item in value.items()
        }
    return value


def _names(
    node: TaskNode, matrix: dict[str, str], plan_params: frozenset[str], param_hints: Suggester
) -> _Names:
    return _Names(
        matrix,
        plan_params,
        frozenset(item.name for item in node.inputs),
        frozenset(node.outputs),
        param_hints,
    )


def _params_pointer(node: TaskNode) -> str:
    return f"{node.origin.pointer}/params" if node.origin.written else node.origin.pointer


def expand_matrix(
    nodes: list[TaskNode], plan_params: frozenset[str]
) -> tuple[list[TaskNode], dict[str, list[str]], list[Diagnostic]]:
    """Expand matrix tasks and resolve templates.

    Returns the nodes, a map from each matrix task's id to its expansions' ids (dependencies on
    the id wait for all of them), and diagnostics.
    """
    problems: list[Diagnostic] = []
    expanded: list[TaskNode] = []
    expansions: dict[str, list[str]] = {}
    param_hints = Suggester(plan_params)
    for node in nodes:
        has_template = node.params and "${{" in repr(node.params)
        if not node.matrix_axes:
            if has_template:
                params = _substitute(
                    node.params,
                    _params_pointer(node),
                    _names(node, {}, plan_params, param_hints),
                    problems,
                )
                node = dataclasses.replace(node, params=params)
            expanded.append(node)
            continue
        axes = [axis for axis, _ in node.matrix_axes]
        # Sizes were checked by `budget.expansion_problems` before: the product is small.
        combinations = list(itertools.product(*(values for _, values in node.matrix_axes)))
        ids = []
        for values in combinations:
            combination = tuple(zip(axes, values, strict=True))
            matrix = {axis: render_value(value) for axis, value in combination}
            params = node.params
            if has_template:
                names = _names(node, matrix, plan_params, param_hints)
                params = _substitute(params, _params_pointer(node), names, problems)
            child = dataclasses.replace(
                node,
                id=expanded_id(node.id, combination),
                params=params,
                matrix=combination,
                matrix_axes=(),
                origin=dataclasses.replace(node.origin, rule=RULE),
            )
            ids.append(child.id)
            expanded.append(child)
        expansions[node.id] = ids
    # One template mistake in a matrix task is one mistake, not one per combination.
    unique = list(dict.fromkeys(problems))
    return expanded, expansions, unique
