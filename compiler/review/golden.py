"""Golden outputs: does each plan's committed TaskGraph and flow module match what it compiles to?

A plan's outputs are expected where ``plan2flow compile`` writes them: beside the plan, or in one
output directory. Each output is up to date (the same bytes), stale (different bytes) or missing;
a plan that does not compile is invalid. A stale or missing output comes with a unified diff from
the committed file (``/dev/null`` when missing) to the compiled one.

Pure: reading the committed files is the caller's, through the ``read_output`` function it
passes, and so is finding the plans (``is_plan``, ``is_yaml_name`` and ``is_searched_dir`` say
which files and folders count).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..codegen import graph_file_name
from ..errors import Diagnostic, PlanError, diagnostic
from ..pipeline import CompileResult, compile_plan
from ..taskgraph_file import output_files


class Status(enum.StrEnum):
    """How a plan's outputs compare; a plan takes the worst status of its outputs."""

    UP_TO_DATE = "up to date"
    STALE = "stale"
    MISSING = "missing"
    INVALID = "invalid"


ReadOutput = Callable[[Path], bytes | None]
"""The committed bytes at a path, or ``None`` when there is no such file."""


@dataclasses.dataclass(frozen=True)
class OutputCheck:
    """One output file of a plan: where it belongs, how it compares, what it should hold."""

    path: Path
    status: Status
    compiled: str
    diff: str
    """The unified diff from the committed file to ``compiled``; empty when up to date."""


@dataclasses.dataclass(frozen=True)
class PlanCheck:
    """One plan: its outputs when it compiles, its diagnostics when it does not."""

    plan: Path
    text: str
    """The plan's source text, for showing diagnostics with their lines."""
    result: CompileResult | None
    diagnostics: tuple[Diagnostic, ...] = ()
    outputs: tuple[OutputCheck, ...] = ()
    unreadable: bool = False

    @property
    def status(self) -> Status:
        if self.result is None:
            return Status.INVALID
        found = {output.status for output in self.outputs}
        for status in (Status.MISSING, Status.STALE):
            if status in found:
                return status
        return Status.UP_TO_DATE

    @property
    def outdated(self) -> tuple[OutputCheck, ...]:
        """The outputs that ``golden update`` rewrites."""
        return tuple(o for o in self.outputs if o.status is not Status.UP_TO_DATE)


_PLAN_HEADER = re.compile(r"""^\ufeff?apiVersion[ \t]*:[ \t]*["']?plan2flow/""", re.MULTILINE)
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})


def is_plan(text: str) -> bool:
    """Whether YAML text is a plan2flow plan: it has a top-level ``apiVersion: plan2flow/...``.

    Looked for in the text, not parsed, so a plan with a YAML error still counts (and is
    reported); other YAML (``prefect.yaml``, ``.pre-commit-config.yaml``) does not.

    >>> is_plan("# hi\\napiVersion: plan2flow/v1\\nkind: Plan\\n")
    True
    >>> is_plan("name: project\\nbuild: null\\n")
    False
    """
    return _PLAN_HEADER.search(text) is not None


def is_yaml_name(name: str) -> bool:
    """Whether a file found in a folder is read to see if it is a plan."""
    return name.lower().endswith((".yaml", ".yml"))


def is_searched_dir(name: str) -> bool:
    """Whether a folder found while searching is searched too: not hidden ones (``.git``,
    ``.venv``), ``node_modules`` or ``__pycache__``."""
    return not name.startswith(".") and name not in _SKIPPED_DIRS


def check_plan(
    plan: Path, source: bytes, read_output: ReadOutput, output_dir: Path | None = None
) -> PlanCheck:
    """Compile the plan and compare its outputs with the committed files."""
    text = source.decode("utf-8", errors="replace")
    try:
        result = compile_plan(source, str(plan))
    except PlanError as error:
        return PlanCheck(plan, text, None, error.diagnostics)
    directory = output_paths(plan, result, output_dir).parent
    outputs = tuple(
        _compare(path, read_output(path), compiled)
        for path, compiled in output_files(result.graph, result.flow_source, directory)
    )
    return PlanCheck(plan, text, result, result.warnings, outputs)


def unreadable_plan(plan: Path, problem: Diagnostic) -> PlanCheck:
    """A plan file that could not be read (P2F001, P2F002): invalid, and a usage error."""
    return PlanCheck(plan, "", None, (problem,), unreadable=True)


def output_paths(plan: Path, result: CompileResult, output_dir: Path | None) -> Path:
    """Where ``plan2flow compile`` writes the plan's TaskGraph; its flow module goes beside it."""
    directory = output_dir if output_dir is not None else plan.parent
    return directory / graph_file_name(result.graph.name)


def without_collisions(checks: Sequence[PlanCheck]) -> list[PlanCheck]:
    """The checks, with each plan whose outputs another plan before it also writes made invalid
    (P2F210), as ``plan2flow compile`` does: one file cannot hold both plans' outputs."""
    owners: dict[str, Path] = {}
    kept = []
    for check in checks:
        clash = next(
            (o for o in check.outputs if owners.get(_key(o.path), check.plan) != check.plan), None
        )
        if clash is None:
            owners.update((_key(o.path), check.plan) for o in check.outputs)
            kept.append(check)
            continue
        assert check.result is not None  # only a compiled plan has outputs
        problem = diagnostic(
            "P2F210",
            f"plan name '{check.result.graph.name}' collides with the plan in "
            f"{owners[_key(clash.path)]}: both would write {clash.path}",
            "/metadata/name",
            hint="give each plan a unique metadata.name",
        )
        located = check.result.source_map.locate(problem)
        kept.append(PlanCheck(check.plan, check.text, None, (*check.diagnostics, located)))
    return kept


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def _compare(path: Path, committed: bytes | None, compiled: str) -> OutputCheck:
    if committed is None:
        return OutputCheck(path, Status.MISSING, compiled, unified_diff(path, None, compiled))
    if committed == compiled.encode("utf-8"):
        return OutputCheck(path, Status.UP_TO_DATE, compiled, "")
    return OutputCheck(path, Status.STALE, compiled, unified_diff(path, committed, compiled))


def unified_diff(path: Path, committed: bytes | None, compiled: str) -> str:
    """``--- committed/<path>`` → ``+++ compiled/<path>`` (from ``/dev/null`` for a missing file),
    with git's marker after a last line that has no newline.

    >>> print(unified_diff(Path("g.json"), b"a\\nb\\n", "a\\nc\\n"), end="")
    --- committed/g.json
    +++ compiled/g.json
    @@ -1,2 +1,2 @@
     a
    -b
    +c
    """
    shown = path.as_posix().lstrip("/")
    old = "" if committed is None else committed.decode("utf-8", errors="replace")
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        compiled.splitlines(keepends=True),
        fromfile="/dev/null" if committed is None else f"committed/{shown}",
        tofile=f"compiled/{shown}",
    )
    return "".join(_terminated(lines))


def _terminated(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n\\ No newline at end of file\n"


def summary(checks: Sequence[PlanCheck]) -> str:
    """``N plan(s): X up to date, Y stale, Z missing, W invalid``."""
    counts = {status: 0 for status in Status}
    for check in checks:
        counts[check.status] += 1
    parts = ", ".join(f"{counts[status]} {status}" for status in Status)
    return f"{len(checks)} plan(s): {parts}"


def pending_writes(checks: Sequence[PlanCheck]) -> list[tuple[Path, str]]:
    """Every stale or missing output and the text it should hold, in plan order."""
    return [(o.path, o.compiled) for check in checks for o in check.outdated]
