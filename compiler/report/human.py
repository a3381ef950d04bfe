"""Compiler-style text: ``plan.yaml:12:7: P2F202 error: ...``, the source line, a caret, a hint.

Long source lines are shown as a window around the column, and long values in messages are cut
(``bounds``), so one diagnostic is a few lines of bounded length."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import Diagnostic
from .bounds import elide, elide_pointer, window

SourceLine = Callable[[str, int], str]
"""Returns the text of a 1-based line of a file ("" when unknown)."""

MAX_PER_FILE = 50


def _where(item: Diagnostic) -> str:
    if item.line is None:
        return item.file
    return f"{item.file}:{item.line}:{item.column}"


def _excerpt(item: Diagnostic, source_line: SourceLine) -> list[str]:
    if item.line is None:
        return []
    text = source_line(item.file, item.line)
    if not text:
        return []
    column = item.column or 1
    text, column, width = window(text, column, max(1, (item.end_column or column + 1) - column))
    # Keep tabs as tabs so the caret lines up in any terminal.
    pad = "".join(c if c == "\t" else " " for c in text[: column - 1])
    gutter = " " * len(str(item.line))
    return [
        f" {gutter} |",
        f" {item.line} | {text}",
        f" {gutter} | {pad}{'^' * width}",
    ]


def format_diagnostic(item: Diagnostic, source_line: SourceLine) -> str:
    lines = [f"{_where(item)}: {item.code} {item.severity.value}: {elide(item.message)}"]
    lines += _excerpt(item, source_line)
    indent = " " * (len(str(item.line)) + 2 if item.line is not None else 2)
    if item.pointer:
        lines.append(f"{indent}= at {elide_pointer(item.pointer)}")
    if item.hint:
        lines.append(f"{indent}= hint: {elide(item.hint)}")
    for related in item.related:
        where = f"{item.file}:{related.line}:{related.column}" if related.line else item.file
        lines.append(f"{indent}= note: {where}: {elide(related.message)}")
    return "\n".join(lines)


def format_human(diagnostics: Sequence[Diagnostic], source_line: SourceLine) -> str:
    """Every diagnostic, at most :data:`MAX_PER_FILE` per file, then '... and N more'."""
    blocks: list[str] = []
    shown: dict[str, int] = {}
    hidden: dict[str, int] = {}
    for item in diagnostics:
        if shown.get(item.file, 0) >= MAX_PER_FILE:
            hidden[item.file] = hidden.get(item.file, 0) + 1
            continue
        shown[item.file] = shown.get(item.file, 0) + 1
        blocks.append(format_diagnostic(item, source_line))
    for file, count in sorted(hidden.items()):
        blocks.append(f"{file}: ... and {count} more (use --format json to see all)")
    return "\n\n".join(blocks) + ("\n" if blocks else "")
