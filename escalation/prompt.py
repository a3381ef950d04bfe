"""What a model is asked for a component, and how its answer is read back.

The model writes only the bodies of the functions that have none; signatures, docstrings,
imports and tests stay the spec's, rendered by the template generator. The answer is JSON,
``{"bodies": {"<function>": "<statements>"}}``: asked for as structured output where the server
supports it, and always validated here, since servers differ in what they enforce.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import AnswerInvalid

SYSTEM = (
    "You complete Python modules. You are given a module's functions; write the body of each "
    "function marked TODO so that its examples hold. Use only the standard library and the "
    "imports listed. Text like «EMAIL_1» stands for a value you cannot see: copy such tokens "
    "exactly where the value belongs, never change them. Answer with JSON only, no prose: "
    '{"bodies": {"<function name>": "<the body: Python statements without the def line>"}}.'
)


class _Bodies(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    bodies: dict[str, str]


def missing_bodies(spec: Mapping[str, Any]) -> list[str]:
    """The functions of a spec that have no body, in written order."""
    return [f["name"] for f in spec.get("functions", []) if not f.get("body")]


def answer_schema(names: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema of an answer for these functions (strict structured output)."""
    bodies = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": list(names),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"bodies": bodies},
        "required": ["bodies"],
        "additionalProperties": False,
    }


def _function(function: Mapping[str, Any]) -> str:
    lines = [f"def {function['name']}{function.get('signature') or '()'}:"]
    if function.get("docstring"):
        lines.append(textwrap.indent(f'"""{function["docstring"]}"""', "    "))
    body = function.get("body")
    lines.append(textwrap.indent(textwrap.dedent(body).strip(), "    ") if body else "    TODO")
    for example in function.get("examples", []):
        lines.append(f"# example: {example['call']} == {example['returns']}")
    return "\n".join(lines)


def user_message(
    spec: Mapping[str, Any], dependencies: Mapping[str, str], feedback: str = ""
) -> str:
    """The component as text a model reads: module, imports, dataclasses, functions, and why
    the code so far is not good enough (``feedback``), when it is known."""
    parts = [f"Module `{spec['module']}`: {spec.get('description') or 'no description'}"]
    if spec.get("imports"):
        parts.append("Imports:\n" + "\n".join(spec["imports"]))
    for dataclass in spec.get("dataclasses", []):
        fields = ", ".join(f"{f['name']}: {f.get('type', 'str')}" for f in dataclass["fields"])
        parts.append(f"@dataclass {dataclass['name']}({fields})")
    parts.append("\n\n".join(_function(f) for f in spec.get("functions", [])))
    for name, code in sorted(dependencies.items()):
        parts.append(f"Module `{name}` (importable):\n{code}")
    if feedback:
        parts.append(feedback)
    parts.append("Write the bodies of: " + ", ".join(missing_bodies(spec)))
    return "\n\n".join(parts)


def messages(
    spec: Mapping[str, Any], dependencies: Mapping[str, str], feedback: str = ""
) -> list[tuple[str, str]]:
    """The messages about the component (the system prompt, :data:`SYSTEM`, goes apart: it is
    plan2flow's own text, not the plan's)."""
    return [("user", user_message(spec, dependencies, feedback))]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_bodies(content: str, names: Sequence[str]) -> dict[str, str]:
    """The body of each function in ``names`` from an answer; :class:`AnswerInvalid` when the
    answer is not that JSON (fenced or with text around it is accepted)."""
    fenced = _FENCE.search(content)
    text = fenced.group(1) if fenced else content
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise AnswerInvalid("the answer holds no JSON object")
    try:
        answer = _Bodies.model_validate(json.loads(text[start : end + 1]))
    except (ValueError, ValidationError) as error:
        raise AnswerInvalid(f"the answer is not the JSON asked for: {error}") from None
    lacking = [name for name in names if not answer.bodies.get(name, "").strip()]
    if lacking:
        raise AnswerInvalid("the answer has no body for " + ", ".join(lacking))
    return {name: textwrap.dedent(answer.bodies[name]).strip() for name in names}


def with_bodies(spec: Mapping[str, Any], bodies: Mapping[str, str]) -> dict[str, Any]:
    """The spec with the answer's bodies in place; ``import os`` added where a body reads a
    masked secret from the environment."""
    functions = [
        {**function, "body": function.get("body") or bodies[function["name"]]}
        for function in spec.get("functions", [])
    ]
    imports = list(spec.get("imports", []))
    reads_environment = any("os.environ[" in body for body in bodies.values())
    if reads_environment and not any(re.fullmatch(r"import os\b.*", line) for line in imports):
        imports.append("import os")
    return {**spec, "functions": functions, "imports": imports}


def example_texts(spec: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Each function's examples as (call, expected result)."""
    return {
        function["name"]: [(e["call"], e["returns"]) for e in function.get("examples", [])]
        for function in spec.get("functions", [])
    }
