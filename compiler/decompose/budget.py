"""What a plan will expand to, counted before anything is expanded.

Sizes multiply: a matrix's axes, a matrix task's fan-in on another matrix task, components that
depend on components. A 1.2 KB plan with five axes of fifty values asks for 312 million tasks, so
every product is computed from the lengths alone, capped, and compared with the limits first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import Diagnostic, diagnostic
from ..load import Limits
from .nodes import TaskNode

MAX_COMBINATIONS = 256
"""Combinations of one task's matrix."""

SHOWN_UP_TO = 10**9
"""Larger counts are written 'more than 1000000000' (a product of many axes has many digits)."""


def capped_product(factors: Iterable[int], cap: int) -> int:
    """The product of `factors`, or ``cap + 1`` as soon as it exceeds `cap` (never a huge int).

    >>> capped_product([50] * 5, 10**9), capped_product([50] * 6, 10**9)
    (312500000, 1000000001)
    """
    product = 1
    for factor in factors:
        product *= factor
        if product > cap:
            return cap + 1
    return product


def shown_count(count: int) -> str:
    """A count as a message shows it.

    >>> shown_count(400), shown_count(SHOWN_UP_TO + 1)
    ('400', 'more than 1000000000')
    """
    return str(count) if count <= SHOWN_UP_TO else f"more than {SHOWN_UP_TO}"


def matrix_size(node: TaskNode) -> int:
    """How many tasks `node` becomes (1 without a matrix), capped just past :data:`SHOWN_UP_TO`."""
    return capped_product((len(values) for _, values in node.matrix_axes), SHOWN_UP_TO)


def _matrix_problem(node: TaskNode, size: int) -> Diagnostic:
    return diagnostic(
        "P2F105",
        f"matrix of '{node.id}' expands to {shown_count(size)} tasks; the limit is "
        f"{MAX_COMBINATIONS}",
        node.matrix_pointer,
        hint="split the matrix or remove combinations",
    )


def _edges(node: TaskNode, size: int, sizes: dict[str, int]) -> int:
    """Edges into `node`'s expansions: each input, and each dependency times its expansions."""
    upstream = len(node.inputs) + sum(sizes.get(dep.task, 1) for dep in node.depends_on)
    return size * upstream


def _largest(nodes: Sequence[TaskNode], weights: Sequence[int]) -> TaskNode:
    return max(zip(weights, range(len(nodes)), nodes, strict=True))[2]


def expansion_problems(nodes: Sequence[TaskNode], limits: Limits) -> list[Diagnostic]:
    """P2F105 for a matrix over :data:`MAX_COMBINATIONS`, or a plan whose expansion exceeds the
    task or edge limit; located at the matrix, or at the task that contributes most."""
    sizes = [matrix_size(node) for node in nodes]
    too_large = [
        _matrix_problem(node, size)
        for node, size in zip(nodes, sizes, strict=True)
        if size > MAX_COMBINATIONS
    ]
    if too_large:
        return too_large
    tasks = sum(sizes)
    if tasks > limits.max_expanded_tasks:
        largest = _largest(nodes, sizes)
        return [
            diagnostic(
                "P2F105",
                f"the plan expands to {tasks} tasks; the limit is {limits.max_expanded_tasks}",
                largest.matrix_pointer or largest.origin.pointer,
                hint="split the plan, or use fewer or smaller matrices",
            )
        ]
    repeated = sum(
        (size - 1) * (len(repr(node.params)) + len(node.description))
        for node, size in zip(nodes, sizes, strict=True)
        if size > 1
    )
    if repeated > limits.max_expanded_bytes:
        largest = _largest(
            nodes, [size * len(repr(node.params)) for node, size in zip(nodes, sizes, strict=True)]
        )
        return [
            diagnostic(
                "P2F105",
                f"matrices repeat {repeated} bytes of params and descriptions; the limit is "
                f"{limits.max_expanded_bytes}",
                largest.matrix_pointer or largest.origin.pointer,
                hint="keep large values out of matrix tasks, e.g. in a file the task reads",
            )
        ]
    by_id = {node.id: size for node, size in zip(nodes, sizes, strict=True)}
    edges = [_edges(node, size, by_id) for node, size in zip(nodes, sizes, strict=True)]
    if sum(edges) > limits.max_edges:
        largest = _largest(nodes, edges)
        return [
            diagnostic(
                "P2F105",
                f"the plan's dependencies and inputs expand to {sum(edges)} edges; the limit is "
                f"{limits.max_edges} ('{largest.id}' alone has {max(edges)})",
                largest.origin.pointer,
                hint="depend on fewer matrix tasks, or on one expansion of each",
            )
        ]
    return []
