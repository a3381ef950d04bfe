"""Run-time values for the ``${{ params.x }}``, ``${{ inputs.x }}`` and ``${{ outputs.x }}``
expressions the compiler checked and left in a task's params."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_EXPRESSION = re.compile(r"\$\{\{\s*(params|inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def referenced_params(value: Any) -> set[str]:
    """The plan parameters a task's params refer to (they are part of its cache key)."""
    text = json.dumps(value)
    return {name for kind, name in _EXPRESSION.findall(text) if kind == "params"}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


def resolve(value: Any, namespaces: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace every expression in the strings of `value` by its value as text."""
    if isinstance(value, str):
        return _EXPRESSION.sub(lambda m: _text(namespaces[m.group(1)][m.group(2)]), value)
    if isinstance(value, list):
        return [resolve(item, namespaces) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, namespaces) for key, item in value.items()}
    return value
