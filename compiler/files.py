"""The compiler's I/O edge: reading plan files and writing outputs atomically, all or nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import Diagnostic, diagnostic
from .load import DEFAULT_LIMITS, Limits


def read_plan(
    path: Path, limits: Limits = DEFAULT_LIMITS
) -> tuple[bytes | None, Diagnostic | None]:
    """The file's bytes, or a located P2F001/P2F002 diagnostic; never reads past the size limit."""
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        hint = "check the path" if isinstance(error, FileNotFoundError) else None
        item = diagnostic("P2F001", f"cannot read plan: {reason}", hint=hint)
        return None, _at_file(item, shown)
    if len(data) > limits.max_bytes:
        item = diagnostic(
            "P2F002",
            f"file is larger than the limit of {limits.max_bytes} bytes",
            hint="split the plan",
        )
        return None, _at_file(item, shown)
    return data, None


def _at_file(item: Diagnostic, file: str) -> Diagnostic:
    from dataclasses import replace

    return replace(item, file=file)


def write_all_atomic(outputs: Sequence[tuple[Path, str | bytes]]) -> None:
    """Write every file (text as UTF-8), or none.

    Targets are checked first (one that is a directory can never be replaced), all contents go
    to temporary files beside their targets, then each is renamed in place: a reader sees the
    old file or the new one, never a torn one. If anything fails, the targets already renamed
    get their old contents back and every temporary file is removed.
    """
    for path, _ in outputs:
        check_target(path)
    staged: list[tuple[str, Path]] = []
    saved: list[tuple[Path, str | None]] = []
    try:
        for path, content in outputs:
            staged.append((_stage(path, content), path))
        for temp, path in staged:
            saved.append((path, _replace(temp, path)))
    except BaseException:
        _restore(saved)
        for temp, _ in staged:
            _discard(temp)
        raise
    for _, old in saved:
        _discard(old)


def check_target(path: Path) -> None:
    """Refuse, before anything is written, a target that can never be a file: a directory, or
    a path through a file (which ``mkdir`` would report as 'File exists')."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
            return


def _stage(path: Path, content: str | bytes) -> str:
    """A complete, synced temporary copy of the new content, beside `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
    except BaseException:
        _discard(temp)
        raise
    return temp


def _replace(temp: str, path: Path) -> str | None:
    """Rename `temp` over `path`; return a second name (a hard link) for the content it
    replaced, to put it back if a later rename fails, or None if there was none."""
    old = None
    if path.exists():
        old = temp.removesuffix(".tmp") + ".old"
        os.link(path, old, follow_symlinks=False)
    try:
        os.replace(temp, path)
    except BaseException:
        _discard(old)
        raise
    return old


def _discard(name: str | None) -> None:
    if name is not None:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _restore(saved: list[tuple[Path, str | None]]) -> None:
    """Undo the renames done so far: old contents back, new files that had none removed."""
    for path, old in reversed(saved):
        with contextlib.suppress(OSError):
            if old is None:
                os.unlink(path)
            else:
                os.replace(old, path)
