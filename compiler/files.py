"""The compiler's I/O edge: reading plan files and writing outputs atomically, all or nothing."""

from __future__ import annotations

import contextlib
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
    """Write every file (text as UTF-8), or none: all go to temporary files first, then each is
    renamed in place.

    A rename within one directory is atomic, so a reader sees the old file or the new one, never
    a torn one; if writing any temporary file fails, nothing is renamed and temporaries are removed.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in outputs:
            data = content.encode("utf-8") if isinstance(content, str) else content
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((temp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
    except BaseException:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise
    for temp, path in staged:
        os.replace(temp, path)
