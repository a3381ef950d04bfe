"""``python -m plan2flow.cli.hooks COMMAND [ARG]...``: a command of the CLI, run as a
pre-commit hook on the files pre-commit passes.

pre-commit passes every staged YAML file that its ``files:`` pattern matches, and a ``plans/``
folder may hold other YAML too (values, fixtures). ``plan2flow golden check`` keeps only the files
that are plans (:func:`plan2flow.compiler.review.golden.is_plan`); this entry point drops the
same non-plans before running the command, so that ``plan2flow-validate`` and
``plan2flow-golden`` select plans the same way. A command left without plans succeeds without
running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from plan2flow.compiler.load import DEFAULT_LIMITS
from plan2flow.compiler.review.golden import is_plan


def holds_plan(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a plan; one that cannot be read is kept, for the command to report."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(DEFAULT_LIMITS.max_bytes)
    except OSError:
        return True
    return is_plan(head.decode("utf-8", errors="replace"))


def plan_arguments(
    args: Sequence[str], is_file: Callable[[str], bool], keep: Callable[[str], bool]
) -> tuple[list[str], int]:
    """The arguments without the files that are not plans, and how many files are left.

    An argument that names no file (the command, an option, its value) is kept as it is.

    >>> plan_arguments(["validate", "--strict", "a.yaml", "b.yaml"],
    ...                lambda a: a.endswith(".yaml"), lambda a: a == "a.yaml")
    (['validate', '--strict', 'a.yaml'], 1)
    """
    kept, files = [], 0
    for arg in args:
        if is_file(arg):
            if not keep(arg):
                continue
            files += 1
        kept.append(arg)
    return kept, files


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``plan2flow`` with the arguments, less the files that are not plans."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept, files = plan_arguments(args, os.path.isfile, holds_plan)
    if files == 0 and len(kept) < len(args):
        return 0
    from . import app

    try:
        app(args=kept, prog_name="plan2flow")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0  # pragma: no cover - Typer always exits


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
