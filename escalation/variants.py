"""Competing variants: what the task to escalate is, and what each tier made of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .signals import Measured

Render = Callable[[Mapping[str, Any]], dict[str, str]]
"""A component spec (every function with a body) → its files, name → text (the module and its
tests); ValueError when the spec cannot be rendered."""

Check = Callable[[Path], str | None]
"""The checks the task's downstream steps will run (validate, test), run on a variant's
directory: None when they pass, else their failure output."""


@dataclasses.dataclass(frozen=True)
class CodeTask:
    """A `generate_code` task whose local result was not good enough."""

    task_id: str
    spec: Mapping[str, Any]
    """The component spec, with its `module` set."""
    render: Render
    dependency_paths: tuple[Path, ...] = ()
    """Directories that hold the modules this one imports (for its import and tests)."""
    dependencies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Module name → code of the modules it imports, shown to the model."""
    plan: str = ""
    flow_run_id: str = ""
    check: Check | None = None
    """The downstream checks a variant must pass to be kept (None: the score alone decides)."""
    feedback: str = ""
    """Why the code made so far is not good enough (the failing checks' output), shown to the
    model with that code."""

    @property
    def module(self) -> str:
        return str(self.spec["module"])


@dataclasses.dataclass
class Variant:
    """One candidate result: its files (None when the tier produced none) and its score."""

    label: str
    tier: str
    model: str | None = None
    files: dict[str, str] | None = None
    problem: str | None = None
    temperature: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    """Tokens estimated because the server reported no usage."""
    cost_usd: float = 0.0
    attempts: int = 0
    delays: tuple[float, ...] = ()
    measured: Measured | None = None
    values: dict[str, float | None] = dataclasses.field(default_factory=dict)
    score: float = 0.0
    checks: str | None = None
    """The downstream checks' failure output; None when they passed or did not run."""
    checked: bool = False

    @property
    def passed(self) -> frozenset[str] | None:
        return None if self.measured is None else self.measured.tests_passed
