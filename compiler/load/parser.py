"""The YAML parsers the loader and the source map read events from: libyaml's when installed,
with a memo of implicit scalar tags."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import ScalarNode

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
