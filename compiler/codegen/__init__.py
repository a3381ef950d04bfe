"""Stage 5: code generation: a TaskGraph → a readable Prefect flow module."""

from __future__ import annotations

from .render import (
    INLINE_LIMIT,
    flow_file_name,
    flow_function_name,
    graph_file_name,
    previous_graph_file_name,
    render_flow,
)

__all__ = [
    "INLINE_LIMIT",
    "flow_file_name",
    "flow_function_name",
    "graph_file_name",
    "previous_graph_file_name",
    "render_flow",
]
