"""The two sides of a diff: a plan, a TaskGraph file, or either one as committed in git.

A side written ``REV:path`` (``main:plans/x.yaml``, ``HEAD~1:plan.yaml``) is read from the
repository of the current directory, like ``git show REV:path``: the path is relative to the
repository root (``REV:./x.yaml`` is relative to the current directory). A side is read from git
only when it contains ``:`` and is not an existing file, so a file whose name has a colon still
works. ``*.json`` is a TaskGraph; anything else is a plan and is compiled under its path, so its
diagnostics point into the file.

Reading (files, ``git``) is kept apart from turning bytes into a document, which is pure.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from ..graph.taskgraph import graph_hash
from ..pipeline import compile_plan
from .diff import empty_graph
from .document import NotATaskGraph, parse_taskgraph


class SourceError(Exception):
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
    """``(rev, path)`` for a git side, ``(None, spec)`` for a file.

    >>> split_spec("main:plans/x.yaml", exists=False)
    ('main', 'plans/x.yaml')
    >>> split_spec("odd:name.yaml", exists=True)
    (None, 'odd:name.yaml')
    """
    rev, colon, path = spec.partition(":")
    if not colon or exists:
        return None, spec
    return rev, path


def read_side(spec: str, *, missing_ok: bool = False, cwd: Path | None = None) -> SideData:
    """Read a side from a file or from git. ``missing_ok``: a file or a path at a revision that
    does not exist reads as ``None`` (a plan added or deleted), but a bad revision is an error."""
    place = Path(cwd or ".") / spec
    rev, path = split_spec(spec, place.exists())
    if rev is None:
        try:
            return SideData(spec, str(PurePath(spec)), place.read_bytes())
        except FileNotFoundError:
            if missing_ok:
                return SideData(spec, str(PurePath(spec)), None)
            raise SourceError(f"{spec}: no such file") from None
        except OSError as error:
            raise SourceError(f"{spec}: cannot read: {error.strerror}") from None
    data = read_git(rev, path, cwd)
    if data is None and not missing_ok:
        raise SourceError(f"{spec}: '{path}' does not exist in '{rev}'")
    return SideData(spec, str(PurePath(path)), data)


def read_git(rev: str, path: str, cwd: Path | None = None) -> bytes | None:
    """The file ``path`` at ``rev``, or ``None`` if the revision has no such path."""
    spec = f"{rev}:{path}"
    if not rev or rev.startswith("-"):
        raise SourceError(f"{spec}: '{rev}' is not a revision")
    verify = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)
    if verify.returncode != 0:
        if verify.returncode == 1:
            raise SourceError(f"{spec}: unknown revision '{rev}'")
        raise SourceError(f"{spec}: {_git_message(verify.stderr)}")
    kind = _git(["cat-file", "-t", spec], cwd)
    if kind.returncode != 0:
        return None
    if kind.stdout.strip() != b"blob":
        raise SourceError(f"{spec}: not a file (a {kind.stdout.decode().strip()})")
    return _git(["cat-file", "blob", spec], cwd).stdout


def _git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SourceError("git is not installed (needed to read REV:path)") from None


def _git_message(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return (lines[0] if lines else "git failed").removeprefix("fatal: ")


def side_document(side: SideData) -> dict[str, Any]:
    """The TaskGraph document of a side: an empty graph if it does not exist, the parsed file for
    ``*.json``, else the compiled plan (raises :class:`~..errors.PlanError` if it is invalid)."""
    if side.data is None:
        return empty_graph()
    if side.file_name.endswith(".json"):
        return checked_taskgraph(side.data, side.spec)
    return compile_plan(side.data, side.file_name).graph.document


def checked_taskgraph(data: bytes, label: str) -> dict[str, Any]:
    """A compiled TaskGraph file, checked: a TaskGraph (see :mod:`.document`), with the fields the
    diff reads, and an intact graph hash (the diff relies on task hashes, so an edited graph is
    refused)."""
    try:
        document = parse_taskgraph(data)
    except NotATaskGraph as error:
        raise SourceError(f"{label}: not a TaskGraph ({error})") from None
    problem = _shape_problem(document)
    if problem:
        raise SourceError(f"{label}: not a TaskGraph ({problem})")
    if document.get("hash") != graph_hash(data.decode("utf-8")):
        raise SourceError(
            f"{label}: the graph does not match its hash (edited after it was compiled?); "
            "compile the plan again"
        )
    return document


_SHAPE: dict[str, dict[str, type]] = {
    "tasks": {"depends_on": list, "hash": str},
    "artifacts": {"id": str, "producer": str, "consumers": list},
}
"""What the diff reads beyond what :func:`.document.parse_taskgraph` checks."""


def _shape_problem(document: Mapping[str, Any]) -> str | None:
    """The first field the diff needs that is missing or of the wrong type, if any."""
    for section, fields in _SHAPE.items():
        items = document.get(section)
        if not isinstance(items, list):
            return f"'{section}' is not a list"
        for position, item in enumerate(items):
            for name, kind in fields.items():
                if not isinstance(item, dict) or not isinstance(item.get(name), kind):
                    return f"{section}[{position}].{name} is missing or not a {kind.__name__}"
    return None
