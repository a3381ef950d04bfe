"""Stage 1: plan text → plain data plus a :class:`SourceMap` that locates any JSON pointer.

PyYAML's constructors silently keep the last of two duplicate keys, expand aliases without limit
and build Python objects from tags; libyaml's composer recurses in C, so a deeply nested file
overflows the C stack and kills the process. This module therefore builds the data itself, in one
pass over libyaml's event stream (the parser is a state machine, it does not recurse), so that it

* refuses deep nesting at the first collection past the limit, wherever it hides;
* counts what aliases expand to without expanding anything, and refuses alias bombs and
  recursive aliases;
* reports duplicate keys, non-string keys, unsupported tags and non-finite numbers, all at once,
  each where it is written;
* keeps no node tree: positions are looked up lazily, only for the pointers a diagnostic names
  (a 100,000-task plan never pays for a position index).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from ..errors import Diagnostic, PlanError, diagnostic
from .builder import (
    _Builder,
    _Fatal,
    _is_libyaml_nesting_limit,
    _line_column,
    _raise_own_nesting_limit,
    _yaml_error,
)
from .limits import DEFAULT_LIMITS, Limits
from .parser import _PureParser
from .source_map import SourceMap, Span

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "LoadedPlan",
    "SourceMap",
    "Span",
    "_Builder",
    "_Fatal",
    "_PureParser",
    "_is_libyaml_nesting_limit",
    "load_plan",
]


@dataclasses.dataclass(frozen=True)
class LoadedPlan:
    """A plan's plain data, the map from pointers back to its source, and the problems that did
    not stop loading (duplicate keys, non-string keys, tags): the data is still checked further."""

    data: dict[str, Any]
    source_map: SourceMap
    problems: tuple[Diagnostic, ...] = ()


def _at(filename: str, line: int, column: int, item: Diagnostic) -> PlanError:
    return PlanError([dataclasses.replace(item, file=filename, line=line, column=column)])


def _decode(source: str | bytes, filename: str) -> str:
    """UTF-8 text, or a P2F009 at the first byte (or lone surrogate) that is not."""
    try:
        if isinstance(source, bytes):
            return source.decode("utf-8")
        source.encode("utf-8")
        return source
    except UnicodeError as error:
        start: int = getattr(error, "start", 0)
        prefix = source[:start]
        before = prefix.decode("utf-8") if isinstance(prefix, bytes) else prefix
        line, column = _line_column(before, len(before))
        bad = source[start]
        message = (
            f"byte 0x{bad:02x} is not valid UTF-8"
            if isinstance(bad, int)
            else f"character U+{ord(bad):04X} cannot be encoded as UTF-8"
        )
        hint = "save the file as UTF-8" if isinstance(bad, int) else "read the file as UTF-8"
        raise _at(filename, line, column, diagnostic("P2F009", message, hint=hint)) from None


def load_plan(source: str | bytes, filename: str, limits: Limits = DEFAULT_LIMITS) -> LoadedPlan:
    """Parse plan text safely; raise :class:`PlanError` when it cannot be read as a mapping.

    >>> load_plan("apiVersion: plan2flow/v1\\nkind: Plan\\n", "p.yaml").data
    {'apiVersion': 'plan2flow/v1', 'kind': 'Plan'}
    """
    if len(source) > limits.max_bytes:
        raise _at(
            filename,
            1,
            1,
            diagnostic(
                "P2F002",
                f"file is {len(source)} bytes; the limit is {limits.max_bytes}",
                hint="split the plan, or generate it with fewer repeated fields",
            ),
        )
    text = _decode(source, filename).removeprefix("\ufeff")
    builder = _Builder(filename, limits)
    try:
        data = builder.build(text)
    except _Fatal:
        raise PlanError(builder.problems) from None
    except yaml.YAMLError as error:
        if _is_libyaml_nesting_limit(error):
            _raise_own_nesting_limit(error, filename, text, limits)
        raise PlanError([*builder.problems, _yaml_error(error, filename, text)]) from None
    source_map = SourceMap(
        filename, text, composable=True, items=builder.items, item_ends=builder.item_ends
    )
    if not isinstance(data, dict):
        raise PlanError(
            [
                *builder.problems,
                dataclasses.replace(
                    diagnostic(
                        "P2F007",
                        "the plan is empty" if data is None else "the plan must be a mapping",
                        hint="start with 'apiVersion: plan2flow/v1' and 'kind: Plan'",
                    ),
                    file=filename,
                    line=builder.root_mark.line + 1 if builder.root_mark else 1,
                    column=builder.root_mark.column + 1 if builder.root_mark else 1,
                ),
            ]
        )
    return LoadedPlan(data, source_map, tuple(builder.problems))
