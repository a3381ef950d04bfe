"""Where a JSON pointer is written in a plan: line and column, found lazily from the parser's
events, only for the pointers a diagnostic names."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import Diagnostic, pointer_join, pointer_parts
from .parser import _MERGE, _Parser


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
