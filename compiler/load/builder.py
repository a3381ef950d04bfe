"""One pass over libyaml's event stream → plain data, with the limits and checks described in
:mod:`plan2flow.compiler.load`."""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from ..errors import Diagnostic, PlanError, Related, diagnostic, pointer_join
from .limits import Limits
from .parser import (
    _MAP_TAGS,
    _MERGE,
    _SCALAR_TAGS,
    _SEQ_TAGS,
    _TEXT_TAGS,
    _Parser,
    _PureParser,
    _resolve_scalar,
)
from .source_map import _placed, _span


class _Fatal(Exception):
    """Stops the event loop: what follows cannot be read safely."""


_NO_KEY = object()  # the next value of a mapping is a key
_SKIP = object()  # the key was not a string: drop its value
_MERGE_KEY = object()  # the key was `<<`


class _Frame:
    """An open mapping or sequence."""

    __slots__ = (
        "anchor",
        "first_keys",
        "key",
        "key_event",
        "merges",
        "pointer",
        "size",
        "start",
        "value",
    )

    def __init__(self, value: Any, pointer: str, start: Any, anchor: str | None) -> None:
        self.value = value
        self.pointer = pointer
        self.start = start
        self.anchor = anchor
        self.size = 1
        self.key: Any = _NO_KEY
        self.key_event: Any = None
        self.first_keys: dict[str, Any] = {}
        self.merges: list[tuple[Any, Any]] = []


class _Builder:
    """Builds plain data from libyaml events, without recursion, collecting every problem."""

    def __init__(self, filename: str, limits: Limits) -> None:
        self.filename = filename
        self.limits = limits
        self.problems: list[Diagnostic] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.written = 0
        self.biggest_alias: tuple[int, Any] = (0, None)
        self.root_mark: Any = None
        self.items: dict[str, dict[int, Any]] = {}
        self.item_ends: dict[str, Any] = {}

    def report(
        self,
        item: Diagnostic,
        start: Any,
        end: Any = None,
        related_mark: Any = None,
    ) -> None:
        related = [_span(related_mark, related_mark)] * len(item.related) if related_mark else []
        where = _span(start, end if end is not None else start)
        self.problems.append(_placed(item, self.filename, where, related))

    def fatal(self, item: Diagnostic, mark: Any) -> _Fatal:
        self.report(item, mark)
        return _Fatal()

    # --- positions in the tree being built ----------------------------------------------------

    @staticmethod
    def child_pointer(stack: list[_Frame]) -> str:
        if not stack:
            return ""
        parent = stack[-1]
        if isinstance(parent.value, list):
            return f"{parent.pointer}/{len(parent.value)}"
        if isinstance(parent.key, str):
            return parent.pointer + pointer_join(parent.key)
        return parent.pointer

    # --- the event loop ----------------------------------------------------------------------

    def build(self, text: str, parser_class: type[Any] = _Parser) -> Any:
        parser = parser_class(text)
        try:
            return self._events(parser)
        finally:
            parser.dispose()

    def _events(self, parser: Any) -> Any:
        get = parser.get_event
        get()  # StreamStartEvent
        if isinstance(get(), StreamEndEvent):
            return None
        stack: list[_Frame] = []
        root: list[Any] = []
        max_depth = self.limits.max_depth
        while True:
            event = get()
            kind = event.__class__
            if self.root_mark is None:
                self.root_mark = event.start_mark
            if kind is ScalarEvent:
                self.written += 1
                value = self._scalar(event, stack)
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
                self._attach(stack, root, value, 1, event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self.written += 1
                pointer = self.child_pointer(stack)
                if len(stack) >= max_depth:
                    raise self.fatal(
                        diagnostic(
                            "P2F005",
                            f"nesting deeper than {max_depth} levels",
                            pointer,
                            hint="a plan never needs this depth; flatten the structure",
                        ),
                        event.start_mark,
                    )
                is_map = kind is MappingStartEvent
                if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
                    self._unsupported_tag(event.tag, pointer, event)
                if event.anchor:
                    self.open_anchors.add(event.anchor)
                if len(stack) == 2 and isinstance(stack[1].value, list):
                    items = self.items.setdefault(stack[1].pointer, {})
                    items[len(stack[1].value)] = event.start_mark
                stack.append(_Frame({} if is_map else [], pointer, event, event.anchor))
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                if len(stack) == 1 and frame.pointer in self.items:
                    self.item_ends[frame.pointer] = event.start_mark
                if isinstance(frame.value, dict):
                    self._merge(frame)
                if frame.anchor:
                    self.anchors[frame.anchor] = (frame.value, frame.size)
                    self.open_anchors.discard(frame.anchor)
                self._attach(stack, root, frame.value, frame.size, frame.start)
            elif kind is AliasEvent:
                self.written += 1
                value, size = self._alias(event)
                if size > self.biggest_alias[0]:
                    self.biggest_alias = (size, event.start_mark)
                self._attach(stack, root, value, size, event)
            elif kind is DocumentEndEvent:
                break
        following = get()
        if not isinstance(following, StreamEndEvent):
            raise self.fatal(
                diagnostic(
                    "P2F003",
                    "invalid YAML: expected a single document in the stream",
                    hint="a plan file holds one document; remove the extra '---'",
                ),
                following.start_mark,
            )
        self._check_expansion(root[1])
        return root[0]

    def _alias(self, event: Any) -> tuple[Any, int]:
        name = event.anchor
        if name in self.open_anchors:
            raise self.fatal(
                diagnostic(
                    "P2F006",
                    f"recursive alias '*{name}': a node contains itself",
                    hint="an anchor cannot be used inside its own value",
                ),
                event.start_mark,
            )
        if name not in self.anchors:
            raise self.fatal(
                diagnostic(
                    "P2F003",
                    f"invalid YAML: found undefined alias '*{name}'",
                    hint="define the anchor ('&name') before using it",
                ),
                event.start_mark,
            )
        return self.anchors[name]

    def _check_expansion(self, expanded: int) -> None:
        limits = self.limits
        limit = max(self.written * limits.alias_expansion_factor, limits.min_expanded_nodes)
        if expanded > limit:
            raise self.fatal(
                diagnostic(
                    "P2F006",
                    f"aliases expand this plan beyond {limit} nodes",
                    hint="write the repeated values out, or share fewer levels of aliases",
                ),
                self.biggest_alias[1],
            )

    def _attach(
        self, stack: list[_Frame], root: list[Any], value: Any, size: int, start: Any
    ) -> None:
        if not stack:
            root[:] = [value, size]
            return
        parent = stack[-1]
        parent.size += size
        container = parent.value
        if isinstance(container, list):
            container.append(value)
            return
        key = parent.key
        if key is _NO_KEY:
            parent.key = self._key(value, start, parent.pointer)
            parent.key_event = start
            return
        parent.key = _NO_KEY
        if key is _MERGE_KEY:
            parent.merges.append((value, start))
        elif key is _SKIP:
            return
        elif key in container:
            pointer = parent.pointer + pointer_join(key)
            self.report(
                diagnostic(
                    "P2F004",
                    f"duplicate key '{key}'",
                    pointer,
                    hint="YAML would keep only the last value; remove or rename one of them",
                    related=[Related(pointer, f"'{key}' first defined here")],
                ),
                parent.key_event.start_mark,
                parent.key_event.end_mark,
                related_mark=parent.first_keys[key].start_mark,
            )
        else:
            container[key] = value
            parent.first_keys[key] = parent.key_event

    def _key(self, value: Any, start: Any, pointer: str) -> Any:
        """Classify a mapping key: a string, ``<<``, or something to report and skip."""
        if isinstance(start, ScalarEvent):
            tag = self._tag_of(start)
            if tag == _MERGE:
                return _MERGE_KEY
            if tag in _TEXT_TAGS:
                return value
            self.report(
                diagnostic(
                    "P2F104",
                    f"mapping key {start.value!r} is not a string",
                    pointer,
                    hint=f"quote the key: '{start.value}'",
                ),
                start.start_mark,
                start.end_mark,
            )
            return _SKIP
        if isinstance(start, AliasEvent) and isinstance(value, str):
            return value
        self.report(
            diagnostic("P2F104", "a mapping key must be a string, not a collection", pointer),
            start.start_mark,
        )
        return _SKIP

    def _merge(self, frame: _Frame) -> None:
        """Apply ``<<`` merges: explicit keys win, then earlier merged mappings."""
        mapping = frame.value
        for value, start in frame.merges:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                self.report(
                    diagnostic(
                        "P2F104",
                        "a merge key '<<' needs a mapping or a list of mappings",
                        frame.pointer,
                    ),
                    start.start_mark,
                )
                continue
            for source in sources:
                for key, item in source.items():
                    mapping.setdefault(key, item)

    @staticmethod
    def _tag_of(event: Any) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _resolve_scalar(event.value, event.implicit)
        return str(tag)

    def _scalar(self, event: Any, stack: list[_Frame]) -> Any:
        if stack and isinstance(stack[-1].value, dict) and stack[-1].key is _NO_KEY:
            return event.value  # a key: _attach classifies it
        tag = self._tag_of(event)
        if tag in _TEXT_TAGS:
            return event.value
        pointer = self.child_pointer(stack)
        construct = _SCALAR_TAGS.get(tag)
        shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
        if construct is None:
            self._unsupported_tag(tag, pointer, event)
            return event.value
        try:
            value = construct(ScalarNode(tag, event.value))
        except (ValueError, KeyError, IndexError, TypeError, yaml.YAMLError):
            # An explicit tag (`!!int abc`) asks for a type its text does not have; without one,
            # only an integer longer than Python converts (4300 digits by default) fails.
            explicit = event.tag not in (None, "!")
            self.report(
                diagnostic(
                    "P2F105",
                    f"{event.value!r} is not a valid {shown}"
                    if explicit
                    else f"integer of {len(event.value)} digits; at most "
                    f"{sys.get_int_max_str_digits()} are read",
                    pointer,
                    hint="remove the tag, or write a value of that type"
                    if explicit
                    else "quote it if it is text",
                ),
                event.start_mark,
                event.end_mark,
            )
            return event.value
        if isinstance(value, float) and not math.isfinite(value):
            self.report(
                diagnostic(
                    "P2F105",
                    f"{event.value!r} is not a finite number",
                    pointer,
                    hint="plans are JSON data: use a finite number or quote the text",
                ),
                event.start_mark,
                event.end_mark,
            )
        return value

    def _unsupported_tag(self, tag: str, pointer: str, event: Any) -> None:
        shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
        self.report(
            diagnostic(
                "P2F008",
                f"unsupported YAML tag '{shown}'",
                pointer,
                hint="plans are plain data: remove the tag",
            ),
            event.start_mark,
            event.end_mark if isinstance(event, ScalarEvent) else event.start_mark,
        )


def _yaml_error(error: yaml.YAMLError, filename: str, text: str) -> Diagnostic:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"{problem} ({context})" if context else problem
    line, column = ((mark.line + 1), (mark.column + 1)) if mark else (1, 1)
    position = getattr(error, "position", None)  # a ReaderError: an unprintable character
    if mark is None and isinstance(position, int):
        line, column = _line_column(text, position)
    hint = None
    lines = text.splitlines()
    if mark is not None and 0 < line <= len(lines) and "\t" in lines[line - 1][:column]:
        hint = "YAML indentation must use spaces, not tabs"
    return dataclasses.replace(
        diagnostic("P2F003", f"invalid YAML: {message}", "", hint=hint),
        file=filename,
        line=line,
        column=column,
    )


def _is_libyaml_nesting_limit(error: yaml.YAMLError) -> bool:
    """libyaml 0.2.5 as bundled since PyYAML 6.0.4 stops at 1000 levels of flow nesting."""
    return "maximum nesting depth" in str(getattr(error, "problem", None) or "")


def _raise_own_nesting_limit(
    error: yaml.YAMLError, filename: str, text: str, limits: Limits
) -> None:
    """Re-read the text up to where libyaml stopped, with PyYAML's own parser, so that our limit
    (far below libyaml's) reports P2F005 at the same place whichever PyYAML is installed.

    Only the prefix is read: libyaml's limit lies beyond ours, so P2F005 is met inside it."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return
    starts = [0]
    for _ in range(mark.line):
        starts.append(text.index("\n", starts[-1]) + 1)
    builder = _Builder(filename, limits)
    try:
        builder.build(text[: starts[-1] + mark.column], _PureParser)
    except _Fatal:
        raise PlanError(builder.problems) from None
    except yaml.YAMLError:
        return


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1
