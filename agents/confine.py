"""Agents write only inside the directories they are given.

Names in a request (a module, a project name, a version) arrive from plans, templates and other
tasks' artifacts; a name such as ``../../x`` must never turn into a file elsewhere. An agent
builds every path from such a name with :func:`inside`, checks names with :func:`require`, and
:func:`refusing` turns a refusal into a failed result with one clear finding, before anything is
written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .contract import AgentRequest, AgentResult, Outcome
from .errors import Refused


def require(problem: str | None) -> None:
    """Refuse when a name check found a problem."""
    if problem is not None:
        raise Refused(problem)


def inside(root: Path, *parts: str) -> Path:
    """``root/parts`` resolved, refused when it leaves `root` (``..``, an absolute part, a
    symbolic link pointing out) or is `root` itself."""
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path == base or not path.is_relative_to(base):
        raise Refused(f"refused: {'/'.join(parts)!r} would be written outside {root}")
    return path


Agent = TypeVar("Agent")


def refusing(
    execute: Callable[[Agent, AgentRequest], AgentResult],
) -> Callable[[Agent, AgentRequest], AgentResult]:
    """Wrap an agent's ``execute``: a refusal is reported as a failed result, not raised."""

    @functools.wraps(execute)
    def checked(agent: Agent, request: AgentRequest) -> AgentResult:
        try:
            return execute(agent, request)
        except Refused as refusal:
            return AgentResult(outcome=Outcome.FAILED, findings=[str(refusal)], quality=0.0)

    return checked
