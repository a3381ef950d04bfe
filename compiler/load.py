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
import math
import sys
from collections.abc import Iterator
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
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Diagnostic, PlanError, Related, diagnostic, pointer_join, pointer_parts

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVED: dict[str, str] = {}
_MAX_RESOLVED = 4096


class _ResolveFast:
    """Tag resolution of plain scalars memoised (plans repeat the same words endlessly) and the
    path-resolver bookkeeping dropped (none are registered)."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _resolve_scalar(value, implicit)
        return str(super().resolve(kind, value, implicit))  # type: ignore[misc]


class _Parser(_ResolveFast, _BaseLoader):  # type: ignore[misc]
    """libyaml's parser: the one that reads plans."""


class _PureParser(_ResolveFast, yaml.SafeLoader):
    """PyYAML's pure-Python parser: the same events and marks as libyaml's, without libyaml's own
    nesting limit; used only to place P2F005 where libyaml stopped first."""


_RESOLVER: Any = yaml.resolver.Resolver()


def _resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag YAML 1.1 gives an untagged scalar (`3` → int, `yes` → bool, `a` → str)."""
    if not implicit[0]:
        return str(_RESOLVER.resolve(ScalarNode, value, implicit))
    tag = _RESOLVED.get(value)
    if tag is None:
        tag = str(_RESOLVER.resolve(ScalarNode, value, implicit))
        if len(_RESOLVED) < _MAX_RESOLVED:
            _RESOLVED[value] = tag
    return tag


_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:int": _CONSTRUCTOR.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCTOR.construct_yaml_float,
    "tag:yaml.org,2002:bool": _CONSTRUCTOR.construct_yaml_bool,
    "tag:yaml.org,2002:null": _CONSTRUCTOR.construct_yaml_null,
}
# Dates stay text: a plan is JSON data, and `version: 2024-01-01` means a string. `=` and `<<`
# in value position are text too.
_TEXT_TAGS = {_STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", _MERGE}
_MAP_TAGS = {None, "!", "tag:yaml.org,2002:map"}
_SEQ_TAGS = {None, "!", "tag:yaml.org,2002:seq"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what a plan may ask of the compiler, each checked before the work it bounds.

    The figures behind the defaults are in docs/performance.md (``bench/validate_size.py``).
    """

    max_bytes: int = 4 * 1024 * 1024
    # Written tasks plus components, counted before schema validation.
    max_tasks: int = 50_000
    # Tasks after components and matrices are expanded, counted before anything is expanded.
    max_expanded_tasks: int = 50_000
    # Dependencies and inputs after expansion (a fan-in on a matrix task counts each expansion).
    max_edges: int = 500_000
    # Text that matrices copy into every expansion (params, descriptions).
    max_expanded_bytes: int = 64 * 1024 * 1024
    # Diagnostics reported per plan, the first by position; a P2F010 warning counts the rest.
    max_diagnostics: int = 1_000
    max_depth: int = 64
    # Aliases may expand the document to this many times its written size (and at least to
    # `min_expanded_nodes`), which lets `<<: *defaults` on every task through and stops bombs.
    alias_expansion_factor: int = 10
    min_expanded_nodes: int = 100_000


DEFAULT_LIMITS = Limits()


@dataclasses.dataclass(frozen=True)
class Span:
    """A 1-based position; ``end_column`` is exclusive and set when the node fits on one line."""

    line: int
    column: int
    end_column: int | None = None


def _span(start: Any, end: Any) -> Span:
    end_column = end.column + 1 if end.line == start.line and end.column > start.column else None
    return Span(start.line + 1, start.column + 1, end_column)


class SourceMap:
    """Locates JSON pointers in one plan file.

    Pointers are found in one streaming pass over the parser's events, for all the pointers a
    batch of diagnostics names at once, stopping as soon as all are found. Only pointers that
    pass through a ``<<`` merge need the composed node tree; it is built for text the loader
    accepted (nesting within the limit, so composing cannot overflow the stack).
    """

    def __init__(
        self,
        filename: str,
        text: str,
        *,
        composable: bool = False,
        items: dict[str, dict[int, Any]] | None = None,
        item_ends: dict[str, Any] | None = None,
    ) -> None:
        self.filename = filename
        self.text = text
        self._composable = composable
        # Where each mapping of a top-level list (a task, a component) starts, and where the
        # list ends: a pointer into one task is found by reading that task's text alone.
        self._items = items or {}
        self._item_ends = item_ends or {}
        self._root: Node | None = None
        self._lines: list[str] | None = None
        self._spans: dict[tuple[str, bool], Span] = {}

    def line_text(self, line: int) -> str:
        """The source text of a 1-based line, without its newline."""
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""

    def span(self, pointer: str, *, on_key: bool = False) -> Span:
        """Where `pointer` is written, or its nearest existing ancestor when it is absent."""
        return self.spans([(pointer, on_key)])[(pointer, on_key)]

    def spans(self, wanted: list[tuple[str, bool]]) -> dict[tuple[str, bool], Span]:
        """The spans of many pointers (each with whether its key is meant), in one pass."""
        missing = {w for w in wanted if w not in self._spans}
        for item in list(missing):
            found = self._item_span(*item)
            if found is not None:
                self._spans[item] = found
                missing.discard(item)
        if missing and self._composable:
            self._spans.update(self._scan(missing))
        return {w: self._spans.get(w, Span(1, 1)) for w in wanted}

    def _item_span(self, pointer: str, on_key: bool) -> Span | None:
        """A pointer into one item of a top-level list, found by reading that item's text."""
        parts = pointer_parts(pointer)
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        starts = self._items.get(pointer_join(parts[0]))
        if not starts or int(parts[1]) not in starts:
            return None
        index = int(parts[1])
        start = starts[index]
        end = starts.get(index + 1) or self._item_ends.get(pointer_join(parts[0]))
        if end is None:
            return None
        # The item's text, shifted right to its own column so its indentation stays valid.
        piece = " " * start.column + self.text[start.index : end.index]
        inner = pointer_join(*parts[2:])
        inner_parts = parts[2:]
        prefixes = {pointer_join(*inner_parts[:n]) for n in range(len(inner_parts) + 1)}
        found = _stream_spans(piece, prefixes, {inner} if on_key else set())
        span = found.get((inner, on_key))
        if span is None:
            return None
        return Span(span.line + start.line, span.column, span.end_column)

    def _scan(self, wanted: set[tuple[str, bool]]) -> dict[tuple[str, bool], Span]:
        prefixes: set[str] = set()
        for pointer, _ in wanted:
            parts = pointer_parts(pointer)
            prefixes.update(pointer_join(*parts[:n]) for n in range(len(parts) + 1))
        keys = {pointer for pointer, on_key in wanted if on_key}
        found = _stream_spans(self.text, prefixes, keys)
        result = {}
        for pointer, on_key in wanted:
            exact = found.get((pointer, on_key)) or (
                found.get((pointer, False)) if on_key else None
            )
            if exact is None and "<<" in self.text:
                exact = self._composed_span(pointer, on_key)
            if exact is None:
                parts = pointer_parts(pointer)
                exact = next(
                    (
                        found[(pointer_join(*parts[:n]), False)]
                        for n in range(len(parts), -1, -1)
                        if (pointer_join(*parts[:n]), False) in found
                    ),
                    Span(1, 1),
                )
            result[(pointer, on_key)] = exact
        return result

    def _composed_span(self, pointer: str, on_key: bool) -> Span | None:
        if self._root is None:
            self._root = yaml.compose(self.text, Loader=_Parser)
        node = self._root
        if node is None:
            return None
        parts = pointer_parts(pointer)
        for index, part in enumerate(parts):
            found = _child(node, part)
            if found is None:
                return None
            key_node, node = found
            if index == len(parts) - 1 and on_key and key_node is not None:
                node = key_node
        return _span(node.start_mark, node.end_mark)

    def locate(self, item: Diagnostic) -> Diagnostic:
        """Fill in file, line and column of a diagnostic and of its related locations."""
        return self.locate_all([item])[0]

    def locate_all(self, items: list[Diagnostic]) -> list[Diagnostic]:
        """Locate many diagnostics with one pass over the text."""
        wanted = [(d.pointer, d.on_key) for d in items if d.line is None]
        wanted += [(r.pointer, False) for d in items if d.line is None for r in d.related]
        spans = self.spans(wanted)
        located = []
        for item in items:
            if item.line is not None:
                located.append(item)
                continue
            related = [spans[(r.pointer, False)] for r in item.related]
            located.append(
                _placed(item, self.filename, spans[(item.pointer, item.on_key)], related)
            )
        return located


def _placed(item: Diagnostic, filename: str, where: Span, related: list[Span]) -> Diagnostic:
    """A diagnostic with its position, and its related locations' positions, filled in."""
    return dataclasses.replace(
        item,
        file=filename,
        line=where.line,
        column=where.column,
        end_column=where.end_column,
        related=tuple(
            dataclasses.replace(r, line=s.line, column=s.column)
            for r, s in zip(item.related, related, strict=True)
        ),
    )


def _stream_spans(text: str, prefixes: set[str], keys: set[str]) -> dict[tuple[str, bool], Span]:
    """Spans of the nodes at `prefixes` (and of the keys of `keys`) from the event stream."""
    found: dict[tuple[str, bool], Span] = {}
    total = len(prefixes) + len(keys)
    # A frame: [is_mapping, pointer, next index or pending key, expecting a key, is a key]
    stack: list[list[Any]] = []
    open_starts: dict[int, tuple[str, Any]] = {}
    parser = _Parser(text)
    try:
        get = parser.get_event
        while len(found) < total:
            event = get()
            kind = event.__class__
            if kind is StreamEndEvent:
                break
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                opened = open_starts.pop(id(frame), None)
                if opened is not None:
                    found[(opened[0], False)] = _span(opened[1], event.end_mark)
                if not frame[4]:
                    _consumed(stack)
                continue
            if not (kind is ScalarEvent or kind is AliasEvent or kind in _STARTS):
                continue
            if stack and stack[-1][0] and stack[-1][3]:
                parent = stack[-1]
                name = event.value if kind is ScalarEvent else None
                parent[2], parent[3] = name, False
                child = parent[1] + pointer_join(name) if name is not None else None
                if child is not None and child in keys:
                    found[(child, True)] = _span(event.start_mark, event.end_mark)
                if kind in _STARTS:  # a collection as a key: skip it, then read its value
                    stack.append([kind is MappingStartEvent, "\0key", 0, True, True])
                continue
            pointer = _node_pointer(stack)
            if kind in _STARTS:
                frame = [kind is MappingStartEvent, pointer, 0, True, False]
                stack.append(frame)
                if pointer in prefixes:
                    open_starts[id(frame)] = (pointer, event.start_mark)
                continue
            if pointer in prefixes:
                found[(pointer, False)] = _span(event.start_mark, event.end_mark)
            _consumed(stack)
    except yaml.YAMLError:
        pass
    finally:
        parser.dispose()
    return found


_STARTS = (MappingStartEvent, SequenceStartEvent)


def _node_pointer(stack: list[list[Any]]) -> str:
    if not stack:
        return ""
    parent = stack[-1]
    base: str = parent[1]
    if base == "\0key" or (parent[0] and parent[2] is None):
        return "\0key"
    return base + (pointer_join(parent[2]) if parent[0] else f"/{parent[2]}")


def _consumed(stack: list[list[Any]]) -> None:
    """A value has been read: a sequence moves to its next index, a mapping expects a key."""
    if not stack:
        return
    parent = stack[-1]
    if parent[0]:
        parent[3] = True
    else:
        parent[2] += 1


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    """Key/value nodes of a mapping: explicit ones first, then those merged in with ``<<``."""
    merges: list[Node] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            merges.extend(value.value if isinstance(value, SequenceNode) else [value])
        else:
            yield key, value
    for source in merges:
        if isinstance(source, MappingNode):
            yield from _pairs(source)


def _child(node: Node, part: str) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode):
        for key, value in _pairs(node):
            if isinstance(key, ScalarNode) and key.value == part:
                return key, value
    elif isinstance(node, SequenceNode) and part.isdigit() and int(part) < len(node.value):
        return None, node.value[int(part)]
    return None


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
