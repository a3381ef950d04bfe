"""plan2flow's compiler: PlanSpec YAML → validated, decomposed, hashed TaskGraph.

Importing it never imports Prefect: the compiler runs offline, in CI and in pre-commit hooks.
"""

from __future__ import annotations

from .errors import CODES, Diagnostic, PlanError, Severity
from .graph.taskgraph import TaskGraph
from .load import Limits
from .pipeline import CompileResult, compile_plan

__all__ = [
    "CODES",
    "CompileResult",
    "Diagnostic",
    "Limits",
    "PlanError",
    "Severity",
    "TaskGraph",
    "compile_plan",
]
