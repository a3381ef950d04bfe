"""plan2flow's compiler: PlanSpec YAML → validated, decomposed, hashed TaskGraph.

Importing it never imports Prefect: the compiler runs offline, in CI and in pre-commit hooks.
The other parts of plan2flow use only what this module exports.
"""

from __future__ import annotations

from .codegen import (
    flow_file_name,
    flow_function_name,
    graph_file_name,
    previous_graph_file_name,
    render_flow,
)
from .errors import CODES, CompilerError, Diagnostic, PlanError, Severity
from .files import write_all_atomic
from .graph.canonical import canonical_json, digest
from .graph.taskgraph import TaskGraph, graph_hash
from .load import Limits
from .pipeline import CompileResult, compile_plan
from .review.diff import diff_graphs
from .review.diff_format import format_markdown as diff_markdown
from .review.diff_format import summary as diff_summary
from .review.draw import Mark as GraphMark
from .review.draw import dot as graph_dot
from .taskgraph_file import (
    TaskEntry,
    TaskGraphDocument,
    TaskGraphError,
    output_files,
    parse_taskgraph,
    read_taskgraph,
    write_outputs,
)

__all__ = [
    "CODES",
    "CompileResult",
    "CompilerError",
    "Diagnostic",
    "GraphMark",
    "Limits",
    "PlanError",
    "Severity",
    "TaskEntry",
    "TaskGraph",
    "TaskGraphDocument",
    "TaskGraphError",
    "canonical_json",
    "compile_plan",
    "diff_graphs",
    "diff_markdown",
    "diff_summary",
    "digest",
    "flow_file_name",
    "flow_function_name",
    "graph_dot",
    "graph_file_name",
    "graph_hash",
    "output_files",
    "parse_taskgraph",
    "previous_graph_file_name",
    "read_taskgraph",
    "render_flow",
    "write_all_atomic",
    "write_outputs",
]
