"""Reading the sides of ``plan2flow diff``: a file, or ``REV:path`` from git.

A ``REV:path`` side is read from the repository of the current directory, like
``git show REV:path``: the path is relative to the repository root (``REV:./x.yaml`` is relative
to the current directory). Turning the bytes into a document is the compiler's
(``plan2flow.compiler.review.sources``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePath

from plan2flow.compiler.review.sources import SideData, SourceError, split_spec


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
