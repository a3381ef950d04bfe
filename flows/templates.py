"""Run-time values for the ``${{ params.x }}``, ``${{ inputs.x }}`` and ``${{ outputs.x }}``
expressions the compiler checked and left in a task's params.

A plan is code; parameter values and paths are data. Wherever a value is passed as data (an
argv item, an env value, a keyword argument) it is substituted as text. In the script of a
``shell: true`` task it is not: there an expression becomes a reference to the environment
variable that holds the value (``${P2F_PARAM_WHO}``). The shell expands a variable's value
without parsing it, so no value, whatever quotes, ``$(...)``, backticks or newlines it holds,
ever becomes shell syntax.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_EXPRESSION = re.compile(r"\$\{\{\s*(params|inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

_ENV_PREFIX = {"params": "P2F_PARAM_", "inputs": "P2F_INPUT_", "outputs": "P2F_OUTPUT_"}


def referenced_params(value: Any) -> set[str]:
    """The plan parameters a task's params refer to (they are part of its cache key)."""
    text = json.dumps(value)
    return {name for kind, name in _EXPRESSION.findall(text) if kind == "params"}


def env_name(namespace: str, name: str) -> str:
    """The environment variable of a shell task that holds ``${{ <namespace>.<name> }}``."""
    return _ENV_PREFIX[namespace] + name.upper().replace("-", "_")


def as_text(value: Any) -> str:
    """A parameter's value as text: JSON for lists and objects, ``true``/``false`` for booleans."""
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
        return _EXPRESSION.sub(lambda m: as_text(namespaces[m.group(1)][m.group(2)]), value)
    if isinstance(value, list):
        return [resolve(item, namespaces) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, namespaces) for key, item in value.items()}
    return value


def script_references(script: str) -> str:
    """A shell script with each expression replaced by a reference to its variable."""
    return _EXPRESSION.sub(lambda m: "${" + env_name(m.group(1), m.group(2)) + "}", script)


def resolve_params(
    task_type: str, params: Mapping[str, Any], namespaces: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A task's params with their expressions resolved; the script of a ``shell: true`` task
    keeps references to variables instead (see the module's docstring)."""
    resolved: dict[str, Any] = resolve(dict(params), namespaces)
    if task_type == "shell" and params.get("shell") and params.get("argv"):
        resolved["argv"] = [script_references(params["argv"][0]), *resolved["argv"][1:]]
    return resolved
