"""Artifacts pass between tasks by reference: a path on disk, the digest of its content and
its id in project memory.

A task's outputs live in a directory named by the task's cache key, so a task served from
Prefect's cache hands its downstream the very files the original run wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Artifact:
    path: str
    digest: str
    ref: str = ""
    """The artifact's id in project memory (``plan2flow artifacts show <ref>``), which a task
    on another machine fetches it by; empty for outputs of a run before the store existed."""


@dataclasses.dataclass(frozen=True)
class Attempts:
    """How a task ran: its attempts, when the first began and when the last ended (epoch
    seconds). A task hands it back with its output, or attached to the exception it failed
    with, so that it reaches the flow from whichever process or machine the task ran in."""

    count: int
    started: float
    ended: float


@dataclasses.dataclass(frozen=True)
class TaskOutput:
    """What a completed task returns to Prefect (and its result file holds): references only."""

    task_id: str
    artifacts: dict[str, Artifact]
    logs: dict[str, str] = dataclasses.field(default_factory=dict)
    """Captured stdout/stderr files, by name (not part of any cache key)."""
    attempts: Attempts | None = None
    """How the run that made these outputs went (that of the original run when served from
    the cache)."""


def digest_path(path: Path) -> str:
    """sha256 of a file, or of a directory tree (relative names and file contents, sorted)."""
    digest = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(digest_path(file).encode() + b"\0")
    return "sha256:" + digest.hexdigest()


def size_of(path: Path) -> int | None:
    """Bytes of a file, or of every file in a directory tree; ``None`` when it is gone."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(
            (Path(root) / name).stat().st_size for root, _, files in os.walk(path) for name in files
        )
    except OSError:
        return None
