"""Stage 1: plan text → plain data plus a :class:`SourceMap` that locates any JSON pointer.

PyYAML's constructors silently keep the last of two duplicate keys, expand aliases without limit
and build Python objects from tags. This module composes the document with libyaml (safe: composing
never constructs objects) and builds the data itself, so that it can

* report duplicate keys, non-string keys, unsupported tags and non-finite numbers, all at once;
* refuse oversized files, deep nesting and alias bombs before doing the expensive work;
* keep the composed node tree, from which line and column are looked up lazily, only for the
  pointers a diagnostic names (a 100,000-task plan never pays for a full position index).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import Diagnostic, PlanError, Related, diagnostic, pointer_join, pointer_parts

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVED: dict[tuple[str, bool], str] = {}
_MAX_RESOLVED = 4096


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's composer with the Python-side bookkeeping it does per node cut down: no path
    resolvers are registered, and plans repeat the same plain scalars (types, ids) endlessly."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is not ScalarNode or not implicit[0]:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit[1])
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_RESOLVED) < _MAX_RESOLVED:
                _RESOLVED[key] = tag
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
# Dates stay text: a plan is JSON data, and `version: 2024-01-01` means a string.
_TEXT_TAGS = {_STR, "tag:yaml.org,2002:timestamp"}
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what a plan file may ask of the loader."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    # Aliases may expand the document to this many times its written size (and at least to
    # `min_expanded_nodes`), which lets `<<: *defaults` on every task through and stops bombs.
    alias_expansion_factor: int = 10
    min_expanded_nodes: int = 100_000


@dataclasses.dataclass(frozen=True)
class Span:
    """A 1-based position; ``end_column`` is exclusive and set when the node fits on one line."""

    line: int
    column: int
    end_column: int | None = None


class SourceMap:
    """Locates JSON pointers in the composed YAML tree of one file."""

    def __init__(self, filename: str, text: str, root: Node | None) -> None:
        self.filename = filename
        self.text = text
        self._root = root
        self._lines: list[str] | None = None

    def line_text(self, line: int) -> str:
        """The source text of a 1-based line, without its newline."""
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""

    def span(self, pointer: str, *, on_key: bool = False) -> Span:
        """Where `pointer` is written, or its nearest existing ancestor when it is absent."""
        node = self._root
        if node is None:
            return Span(1, 1)
        parts = pointer_parts(pointer)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            if last and on_key and key_node is not None:
                node = key_node
        return _span_of(node)

    def locate(self, item: Diagnostic) -> Diagnostic:
        """Fill in file, line and column of a diagnostic and of its related locations."""
        where = self.span(item.pointer, on_key=item.on_key)
        related = tuple(
            dataclasses.replace(r, line=s.line, column=s.column)
            for r in item.related
            for s in [self.span(r.pointer)]
        )
        return dataclasses.replace(
            item,
            file=self.filename,
            line=where.line,
            column=where.column,
            end_column=where.end_column,
            related=related,
        )


def _span_of(node: Node) -> Span:
    start, end = node.start_mark, node.end_mark
    end_column = end.column + 1 if end.line == start.line and end.column > start.column else None
    return Span(start.line + 1, start.column + 1, end_column)


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


def _max_flow_depth(text: str) -> int:
    """Upper bound of flow-collection nesting, computed on the bracket characters alone.

    libyaml composes recursively, so a file of a million ``[`` must be refused before parsing.
    Brackets inside strings can only over-estimate, and only plans that write 64 of them do.
    """
    brackets = _NOT_BRACKETS.sub("", text)
    if len(brackets) <= Limits.max_depth:
        return len(brackets)
    return max(itertools.accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep_at(text: str, max_depth: int) -> tuple[int, int]:
    """Line and column of the first bracket past `max_depth` (only run on the failure path)."""
    depth = 0
    for match in _BRACKET.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > max_depth:
            start = match.start()
            line_start = text.rfind("\n", 0, start) + 1
            return text.count("\n", 0, start) + 1, start - line_start + 1
    return 1, 1  # pragma: no cover - only called when the bound says too deep


def _expanded_size(root: Node, limit: int) -> tuple[int, Node | None]:
    """Count nodes as the document would be expanded, memoised per shared node.

    Returns the size (capped just above `limit`) and, for a recursive alias, the node where the
    recursion was found.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Recursive(node)
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total = min(total, limit + 1)
        return total

    try:
        return size(root), None
    except _Recursive as recursive:
        return 0, recursive.node


class _Recursive(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


class _Builder:
    """Builds plain data from composed nodes, collecting every problem with the node it is on."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.problems: list[tuple[Diagnostic, Node, Node | None]] = []
        self.too_deep = False

    def report(self, item: Diagnostic, node: Node, related_node: Node | None = None) -> None:
        self.problems.append((item, node, related_node))

    def build(self, node: Node, pointer: str, depth: int) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node, pointer)
        if depth >= self.max_depth:
            if not self.too_deep:
                self.too_deep = True
                self.report(
                    diagnostic(
                        "P2F005",
                        f"nesting deeper than {self.max_depth} levels",
                        pointer,
                        hint="a plan never needs this depth; flatten the structure",
                    ),
                    node,
                )
            return None
        if node.tag not in _COLLECTION_TAGS:
            self._unsupported_tag(node, pointer)
        if isinstance(node, SequenceNode):
            return [
                self.build(child, f"{pointer}/{i}", depth + 1) for i, child in enumerate(node.value)
            ]
        assert isinstance(node, MappingNode)
        return self._mapping(node, pointer, depth)

    def _mapping(self, node: MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_keys: dict[str, Node] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                merged.extend((key_node, source) for source in sources)
                continue
            key = self._key(key_node, pointer)
            if key is None:
                continue
            child = pointer + pointer_join(key)
            if key in first_keys:
                self.report(
                    diagnostic(
                        "P2F004",
                        f"duplicate key '{key}'",
                        child,
                        hint="YAML would keep only the last value; remove or rename one of them",
                        related=[Related(child, f"'{key}' first defined here")],
                    ),
                    key_node,
                    first_keys[key],
                )
                continue
            first_keys[key] = key_node
            result[key] = self.build(value_node, child, depth + 1)
        for merge_key, source in merged:
            if not isinstance(source, MappingNode):
                self.report(
                    diagnostic(
                        "P2F104", "a merge key '<<' needs a mapping or a list of mappings", pointer
                    ),
                    merge_key,
                )
                continue
            for key, value in self._mapping(source, pointer, depth).items():
                result.setdefault(key, value)
        return result

    def _key(self, node: Node, pointer: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag in _TEXT_TAGS:
            return str(node.value)
        scalar = isinstance(node, ScalarNode)
        shown = repr(node.value) if scalar else "a collection"
        self.report(
            diagnostic(
                "P2F104",
                f"mapping key {shown} is not a string",
                pointer,
                hint=f"quote the key: '{node.value}'" if scalar else None,
            ),
            node,
        )
        return None

    def _scalar(self, node: ScalarNode, pointer: str) -> Any:
        tag = node.tag
        if tag in _TEXT_TAGS:
            return node.value
        construct = _SCALAR_TAGS.get(tag)
        if construct is None:
            self._unsupported_tag(node, pointer)
            return node.value
        value = construct(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.report(
                diagnostic(
                    "P2F105",
                    f"{node.value!r} is not a finite number",
                    pointer,
                    hint="plans are JSON data: use a finite number or quote the text",
                ),
                node,
            )
        return value

    def _unsupported_tag(self, node: Node, pointer: str) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
        self.report(
            diagnostic(
                "P2F008",
                f"unsupported YAML tag '{tag}'",
                pointer,
                hint="plans are plain data: remove the tag",
            ),
            node,
        )

    def located(self, filename: str) -> list[Diagnostic]:
        """The problems, positioned at the nodes they were found on."""
        located = []
        for item, node, related_node in self.problems:
            span = _span_of(node)
            related = item.related
            if related_node is not None:
                first = _span_of(related_node)
                related = tuple(
                    dataclasses.replace(r, line=first.line, column=first.column) for r in related
                )
            located.append(
                dataclasses.replace(
                    item,
                    file=filename,
                    line=span.line,
                    column=span.column,
                    end_column=span.end_column,
                    related=related,
                )
            )
        return located


def _yaml_error(error: yaml.YAMLError, filename: str, source_map: SourceMap) -> Diagnostic:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"{problem} ({context})" if context else problem
    hint = None
    if mark is not None and "\t" in source_map.line_text(mark.line + 1)[: mark.column + 1]:
        hint = "YAML indentation must use spaces, not tabs"
    elif "expected a single document" in message:
        hint = "a plan file holds one document; remove the extra '---'"
    return dataclasses.replace(
        diagnostic("P2F003", f"invalid YAML: {message}", "", hint=hint),
        file=filename,
        line=(mark.line + 1) if mark else 1,
        column=(mark.column + 1) if mark else 1,
    )


@dataclasses.dataclass(frozen=True)
class LoadedPlan:
    """A plan's plain data, the map from pointers back to its source, and the problems that did
    not stop loading (duplicate keys, non-string keys, tags): the data is still checked further."""

    data: dict[str, Any]
    source_map: SourceMap
    problems: tuple[Diagnostic, ...] = ()


DEFAULT_LIMITS = Limits()


def load_plan(source: str | bytes, filename: str, limits: Limits = DEFAULT_LIMITS) -> LoadedPlan:
    """Parse plan text safely; raise :class:`PlanError` when it cannot be read as a mapping.

    >>> load_plan("apiVersion: plan2flow/v1\\nkind: Plan\\n", "p.yaml").data
    {'apiVersion': 'plan2flow/v1', 'kind': 'Plan'}
    """
    empty = SourceMap(filename, "", None)
    size = len(source)
    if size > limits.max_bytes:
        raise PlanError(
            [
                empty.locate(
                    diagnostic(
                        "P2F002",
                        f"file is {size} bytes; the limit is {limits.max_bytes}",
                        hint="split the plan, or generate it with fewer repeated fields",
                    )
                )
            ]
        )
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as error:
            before = source[: error.start]
            line = before.count(b"\n") + 1
            column = error.start - (before.rfind(b"\n") + 1) + 1
            raise PlanError(
                [
                    dataclasses.replace(
                        diagnostic(
                            "P2F009",
                            f"byte 0x{source[error.start]:02x} is not valid UTF-8",
                            hint="save the file as UTF-8",
                        ),
                        file=filename,
                        line=line,
                        column=column,
                    )
                ]
            ) from None
    else:
        text = source
    text = text.removeprefix("\ufeff")
    source_map = SourceMap(filename, text, None)
    depth = _max_flow_depth(text)
    if depth > limits.max_depth:
        line, column = _too_deep_at(text, limits.max_depth)
        raise PlanError(
            [
                dataclasses.replace(
                    diagnostic(
                        "P2F005",
                        f"flow collections nested {depth} levels deep; the limit is "
                        f"{limits.max_depth}",
                        hint="a plan never needs this depth; flatten the structure",
                    ),
                    file=filename,
                    line=line,
                    column=column,
                )
            ]
        )
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise PlanError([_yaml_error(error, filename, source_map)]) from None
    source_map = SourceMap(filename, text, root)
    if root is None or not isinstance(root, MappingNode):
        raise PlanError(
            [
                source_map.locate(
                    diagnostic(
                        "P2F007",
                        "the plan is empty" if root is None else "the plan must be a mapping",
                        hint="start with 'apiVersion: plan2flow/v1' and 'kind: Plan'",
                    )
                )
            ]
        )
    if "*" in text:
        _check_aliases(root, source_map, limits)
    builder = _Builder(limits.max_depth)
    data = builder.build(root, "", 0)
    return LoadedPlan(data, source_map, tuple(builder.located(filename)))


def _check_aliases(root: Node, source_map: SourceMap, limits: Limits) -> None:
    written = _count_written(root)
    limit = max(written * limits.alias_expansion_factor, limits.min_expanded_nodes)
    expanded, recursive = _expanded_size(root, limit)
    if recursive is not None:
        span = _span_of(recursive)
        raise PlanError(
            [
                dataclasses.replace(
                    diagnostic(
                        "P2F006",
                        "recursive alias: a node contains itself",
                        hint="an anchor cannot be used inside its own value",
                    ),
                    file=source_map.filename,
                    line=span.line,
                    column=span.column,
                )
            ]
        )
    if expanded > limit:
        raise PlanError(
            [
                source_map.locate(
                    diagnostic(
                        "P2F006",
                        f"aliases expand this plan beyond {limit} nodes",
                        hint="write the repeated values out, or share fewer levels of aliases",
                    )
                )
            ]
        )


def _count_written(root: Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
    return len(seen)
