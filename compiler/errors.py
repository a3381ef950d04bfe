"""The one error type of the compiler: a located, coded :class:`Diagnostic`.

Every stage reports what it finds as diagnostics and keeps going; the pipeline raises a single
:class:`PlanError` carrying all of them. Codes are stable API (documented in ``docs/planspec.md``):
tools and users match on them, so a code is never reused for another meaning.

Code ranges::

    P2F0xx  reading the file: size, encoding, YAML syntax, duplicate keys, limits
    P2F1xx  schema: unknown/missing fields, wrong types, invalid values, unsupported apiVersion
    P2F2xx  references: ids, dependencies, artifacts, components, agents, matrix variables
    P2F3xx  graph: cycles, unconsumed artifacts, disconnected tasks, pipeline rules
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence


class Severity(enum.StrEnum):
    """How bad a finding is; ``--strict`` promotes warnings to errors."""

    ERROR = "error"
    WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class CodeInfo:
    """What a diagnostic code means, for docs and SARIF rules."""

    code: str
    title: str
    severity: Severity = Severity.ERROR


def _codes(*infos: CodeInfo) -> dict[str, CodeInfo]:
    return {info.code: info for info in infos}


CODES: dict[str, CodeInfo] = _codes(
    CodeInfo("P2F001", "file cannot be read"),
    CodeInfo("P2F002", "file too large"),
    CodeInfo("P2F003", "YAML syntax error"),
    CodeInfo("P2F004", "duplicate mapping key"),
    CodeInfo("P2F005", "nesting too deep"),
    CodeInfo("P2F006", "alias expansion too large or recursive"),
    CodeInfo("P2F007", "document is not a plan mapping"),
    CodeInfo("P2F008", "unsupported YAML tag"),
    CodeInfo("P2F009", "file is not valid UTF-8"),
    CodeInfo("P2F010", "more problems than are reported", Severity.WARNING),
    CodeInfo("P2F100", "unsupported apiVersion"),
    CodeInfo("P2F101", "unsupported kind"),
    CodeInfo("P2F102", "unknown field"),
    CodeInfo("P2F103", "missing required field"),
    CodeInfo("P2F104", "wrong type"),
    CodeInfo("P2F105", "invalid value"),
    CodeInfo("P2F106", "unknown task type"),
    CodeInfo("P2F107", "parameter default does not match its type"),
    CodeInfo("P2F108", "plan defines no tasks"),
    CodeInfo("P2F109", "invalid module, distribution or version name"),
    CodeInfo("P2F110", "escalation policy that cannot run as written"),
    CodeInfo("P2F111", "approval option or enum value not declared"),
    CodeInfo("P2F201", "duplicate task id"),
    CodeInfo("P2F202", "unknown dependency"),
    CodeInfo("P2F203", "task depends on itself"),
    CodeInfo("P2F204", "artifact consumed but never produced"),
    CodeInfo("P2F205", "ambiguous reference to a matrix task"),
    CodeInfo("P2F206", "duplicate component"),
    CodeInfo("P2F207", "unknown component dependency"),
    CodeInfo("P2F208", "agent set on a task type that has no agent"),
    CodeInfo("P2F209", "unknown template variable"),
    CodeInfo("P2F210", "duplicate plan name"),
    CodeInfo("P2F211", "branch names a task that is not directly downstream"),
    CodeInfo("P2F301", "dependency cycle"),
    CodeInfo("P2F302", "artifact produced but never consumed", Severity.WARNING),
    CodeInfo("P2F303", "disconnected task", Severity.WARNING),
    CodeInfo("P2F304", "deploy without validate and test"),
)


@dataclasses.dataclass(frozen=True)
class Related:
    """A secondary location of a diagnostic, such as one edge of a cycle."""

    pointer: str
    message: str
    line: int | None = None
    column: int | None = None


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """One finding: what is wrong, where (file, line, column, JSON pointer) and how to fix it.

    Stages create diagnostics with a pointer only; :func:`plan2flow.compiler.load.SourceMap.locate`
    fills in line and column. ``on_key`` points at a mapping key rather than its value (an unknown
    field is reported where its name is written).
    """

    code: str
    message: str
    pointer: str = ""
    hint: str | None = None
    file: str = ""
    line: int | None = None
    column: int | None = None
    end_column: int | None = None
    severity: Severity = Severity.ERROR
    on_key: bool = False
    related: tuple[Related, ...] = ()

    def sort_key(self) -> tuple[str, int, int, str, str, str]:
        return (
            self.file,
            self.line or 0,
            self.column or 0,
            self.code,
            self.pointer,
            self.message,
        )


def diagnostic(
    code: str,
    message: str,
    pointer: str = "",
    *,
    hint: str | None = None,
    on_key: bool = False,
    related: Sequence[Related] = (),
) -> Diagnostic:
    """Create a diagnostic whose severity comes from the code registry."""
    return Diagnostic(
        code=code,
        message=message,
        pointer=pointer,
        hint=hint,
        severity=CODES[code].severity,
        on_key=on_key,
        related=tuple(related),
    )


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Order diagnostics by file and position so output is stable."""
    return tuple(sorted(set(diagnostics), key=Diagnostic.sort_key))


def cap_diagnostics(diagnostics: Iterable[Diagnostic], limit: int) -> tuple[Diagnostic, ...]:
    """The first `limit` diagnostics by position, and a P2F010 that counts the rest.

    A hostile plan can hold a problem every few bytes; past the limit, more diagnostics only cost
    memory and output (measured: 550 MB per MB of such a plan in SARIF). The note is a warning
    placed at the last diagnostic shown, so it never changes the verdict.
    """
    ordered = sort_diagnostics(diagnostics)
    if len(ordered) <= limit:
        return ordered
    last = ordered[limit - 1]
    note = diagnostic(
        "P2F010",
        f"{len(ordered) - limit} more problems are not reported; the limit is {limit} per plan",
        last.pointer,
        hint="fix the problems reported, then run again",
    )
    where = dataclasses.replace(
        note, file=last.file, line=last.line, column=last.column, end_column=last.end_column
    )
    return (*ordered[:limit], where)


def promote_warnings(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Treat every warning as an error (``--strict``)."""
    return tuple(dataclasses.replace(d, severity=Severity.ERROR) for d in diagnostics)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


class CompilerError(Exception):
    """The root of the compiler's errors; ``exit_status`` is what the command line exits with.

    ::

        CompilerError
        ├── PlanError        a plan that cannot be compiled: every diagnostic (exit status 1)
        ├── TaskGraphError   a file or text that is not an intact TaskGraph (2)
        └── SourceError      a side of a diff that cannot be read (2)
    """

    exit_status = 2


class PlanError(CompilerError):
    """A plan that cannot be compiled, with every diagnostic found in it."""

    exit_status = 1

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        errors = sum(d.severity is Severity.ERROR for d in self.diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        where = f"{first.file}:{first.line}:{first.column}: " if first else ""
        what = f"{first.code} {first.message}" if first else "invalid plan"
        super().__init__(f"{where}{what} ({errors} error(s) in all)")


def pointer_join(*parts: str | int) -> str:
    """Build an RFC 6901 JSON pointer from path parts.

    >>> pointer_join("tasks", 3, "depends_on", 0)
    '/tasks/3/depends_on/0'
    >>> pointer_join("labels", "a/b")
    '/labels/a~1b'
    """
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def pointer_parts(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped parts.

    >>> pointer_parts('/labels/a~1b')
    ['labels', 'a/b']
    """
    if not pointer:
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
