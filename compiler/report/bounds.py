"""Diagnostics of bounded size, whatever the plan: long values elided, long lines windowed.

A message repeats what the plan wrote (a field name, a value), and the human format shows the
source line: one 40 MB line printed 84 MB for a single unknown field. Every format passes its
text through these functions, so a diagnostic costs at most a few thousand characters.
"""

from __future__ import annotations

import re

MAX_RUN = 80
"""Characters of one unbroken value (a word, a number, a pointer segment) shown in full."""
MAX_PATH_RUN = 1024
"""Characters of an unbroken value with a ``/`` in it shown in full: file paths in messages
(``collides with the plan in /home/runner/work/...``) are read whole, and are that long in CI."""
MAX_TEXT = 1000
"""Characters of a whole message, hint or note."""
WINDOW = 160
"""Characters of a source line shown around the column."""
ELLIPSIS = "…"

_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def cut(text: str, limit: int) -> str:
    """`text`, or its start and end around a note of how many characters were left out.

    >>> cut("a" * 10, 10)
    'aaaaaaaaaa'
    >>> cut("0123456789" * 10, 40)
    '0123456789…[80 characters]…0123456789'
    """
    if len(text) <= limit:
        return text
    keep = max(2, limit - 20)
    head, tail = text[: keep - keep // 2], text[len(text) - keep // 2 :]
    return f"{head}{ELLIPSIS}[{len(text) - len(head) - len(tail)} characters]{ELLIPSIS}{tail}"


def elide(text: str) -> str:
    """A message, hint or note with every long value cut, then cut as a whole.

    >>> elide("unknown field '" + "k" * 1000 + "'")
    "unknown field 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkk…[942 characters]…kkkkkkkkkkkkkkkkkkkkkkkkkkkkk'"
    """
    if len(text) <= MAX_RUN:
        return text
    return cut(_LONG_RUN.sub(lambda match: _cut_run(match.group(0)), text), MAX_TEXT)


def _cut_run(run: str) -> str:
    """One long unbroken value, cut; a path-like one only past ``MAX_PATH_RUN``.

    >>> _cut_run("/tmp/" + "d" * 100 + "/plan.yaml") == "/tmp/" + "d" * 100 + "/plan.yaml"
    True
    >>> len(_cut_run("/" * 5000)) < MAX_PATH_RUN + 40
    True
    """
    return cut(run, MAX_PATH_RUN if "/" in run else MAX_RUN)


def elide_pointer(pointer: str) -> str:
    """A JSON pointer with each long segment cut; its shape (the path) stays readable.

    >>> elide_pointer("/tasks/0/" + "x" * 100)
    '/tasks/0/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…[40 characters]…xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
    """
    if len(pointer) <= MAX_RUN:
        return pointer
    return "/".join(cut(part, MAX_RUN) for part in pointer.split("/"))


def window(text: str, column: int, width: int) -> tuple[str, int, int]:
    """At most :data:`WINDOW` characters of a source line around a 1-based column.

    Returns the shown text, the column and the width of the marked span within it; a cut at
    either end is marked with an ellipsis.

    >>> window("short line", 7, 4)
    ('short line', 7, 4)
    >>> shown, column, width = window("x" * 1000 + "HERE" + "y" * 1000, 1001, 4)
    >>> shown[column - 1 : column - 1 + width], len(shown), width
    ('HERE', 162, 4)
    """
    if len(text) <= WINDOW:
        return text, column, width
    start = max(0, min(column - 1 - WINDOW // 3, len(text) - WINDOW))
    end = start + WINDOW
    shown = (ELLIPSIS if start else "") + text[start:end] + (ELLIPSIS if end < len(text) else "")
    shown_column = column - start + (1 if start else 0)
    return shown, shown_column, max(1, min(width, end - (column - 1)))
