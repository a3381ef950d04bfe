"""The two sides of a diff: a plan, a TaskGraph file, or either one as committed in git.

A side written ``REV:path`` (``main:plans/x.yaml``, ``HEAD~1:plan.yaml``) is read from git
(:func:`split_spec` says which sides are); ``*.json`` is a TaskGraph; anything else is a plan and
is compiled under its path, so its diagnostics point into the file.

Pure: reading the bytes (files, ``git``) is the command line's (``plan2flow.cli.sources``); this
module turns them into a document.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import CompilerError
from ..pipeline import compile_plan
from ..taskgraph_file import TaskGraphError, read_taskgraph
from .diff import empty_graph


class SourceError(CompilerError):
    """A side that cannot be read or is not a TaskGraph; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class SideData:
    """One side as read: its bytes, or ``None`` when it does not exist and that is allowed."""

    spec: str
    """What the user wrote, shown in the output."""
    file_name: str
    """The name to compile or report the bytes under."""
    data: bytes | None


def split_spec(spec: str, exists: bool) -> tuple[str | None, str]:
    """``(rev, path)`` for a git side, ``(None, spec)`` for a file: a side is read from git only
    when it contains ``:`` and is not an existing file, so a file whose name has a colon still
    works.

    >>> split_spec("main:plans/x.yaml", exists=False)
    ('main', 'plans/x.yaml')
    >>> split_spec("odd:name.yaml", exists=True)
    (None, 'odd:name.yaml')
    """
    rev, colon, path = spec.partition(":")
    if not colon or exists:
        return None, spec
    return rev, path


def side_document(side: SideData) -> dict[str, Any]:
    """The TaskGraph document of a side: an empty graph if it does not exist, the TaskGraph for
    ``*.json`` (every field checked and its hash intact: the diff relies on task hashes, so an
    edited graph is refused), else the compiled plan (raises :class:`~..errors.PlanError` if it
    is invalid)."""
    if side.data is None:
        return empty_graph()
    if side.file_name.endswith(".json"):
        try:
            return read_taskgraph(side.data, label=side.spec).document
        except TaskGraphError as error:
            raise SourceError(str(error)) from None
    return compile_plan(side.data, side.file_name).graph.document
