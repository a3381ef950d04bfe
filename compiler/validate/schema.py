"""Stage 2a: plain data → :class:`PlanSpec`, with pydantic errors translated into diagnostics.

The models are the schema (``schemas/plan.schema.json`` is generated from them), and pydantic's
compiled validator checks a 100,000-task plan in a fraction of the time a JSON Schema validator
needs. When a plan is invalid, every error is reported, and the parts that are valid (each task,
each component) are kept so that the semantic checks still run on them: an unknown type in one task
does not hide an unknown dependency in another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from ..errors import Diagnostic, diagnostic, pointer_join
from ..load import DEFAULT_LIMITS, Limits
from ..schema import plan_schema
from ..spec import Component, PlanSpec, Task
from ..spec.base import API_VERSION, PATTERN_MEANINGS
from ..spec.components import Delivery
from ..spec.tasks import TASK_TYPES
from .suggest import did_you_mean

_TASK = TypeAdapter[Any](Task)
_COMPONENT = TypeAdapter(Component)
_DELIVERY = TypeAdapter(Delivery)

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false)",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


@dataclasses.dataclass(frozen=True)
class ValidatedPlan:
    """The valid parts of a plan, with where each task and component is written.

    ``unchecked_ids`` are the ids of tasks (and generated tasks) that failed validation: references
    to them are not reported as unknown, since the real error is already reported.
    """

    spec: PlanSpec
    task_pointers: tuple[str, ...]
    component_pointers: tuple[str, ...]
    unchecked_ids: frozenset[str] = frozenset()
    unchecked_components: frozenset[str] = frozenset()


def json_type(value: Any) -> str:
    """The JSON name of a value's type, as users see it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "mapping"


def _shown(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return json_type(value)
    text = repr(value) if isinstance(value, str) else str(value).lower()
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{json_type(value)} {text}"


def _walk(loc: Sequence[int | str], data: Any) -> tuple[list[int | str], bool]:
    """Translate a pydantic location into pointer parts, dropping union tags and branch labels.

    Returns the parts and whether the location ends on a mapping key (`[key]`).
    """
    parts: list[int | str] = []
    node: Any = data
    on_key = False
    for item in loc:
        if item == "[key]":
            on_key = True
            continue
        if isinstance(node, dict):
            if item in node:
                parts.append(item)
                node = node[item]
            elif item == node.get("type") and item in TASK_TYPES:
                continue
            else:
                parts.append(item)
                node = None
        elif isinstance(node, list) and isinstance(item, int):
            parts.append(item)
            node = node[item] if 0 <= item < len(node) else None
        elif node is None:
            parts.append(item)
        # else: a union branch label (`str`, `int`, ...) on a scalar: not part of the path.
    return parts, on_key


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if "type" in node:
        return node  # its own `anyOf`, if any, constrains it (the plan needs tasks)
    for branch in node.get("anyOf", []):
        if branch.get("type") != "null":
            return _resolve(schema, branch)
    return node


def _allowed_fields(loc: Sequence[int | str]) -> list[str]:
    """The field names the schema allows where an unknown field was found."""
    schema = plan_schema()
    node = _resolve(schema, schema)
    for item in loc[:-1]:
        branches = {
            _resolve(schema, branch).get("properties", {}).get("type", {}).get("const"): branch
            for branch in node.get("oneOf", [])
        }
        if item in branches:
            node = _resolve(schema, branches[item])
        elif isinstance(item, int) and "items" in node:
            node = _resolve(schema, node["items"])
        elif item in node.get("properties", {}):
            node = _resolve(schema, node["properties"][item])
        elif node.get("patternProperties"):
            node = _resolve(schema, next(iter(node["patternProperties"].values())))
        elif isinstance(node.get("additionalProperties"), dict):
            node = _resolve(schema, node["additionalProperties"])
        else:
            return []
    return sorted(node.get("properties", {}))


def _translate(error: ErrorDetails, data: Any) -> Diagnostic:
    kind = error["type"]
    loc = error["loc"]
    parts, on_key = _walk(loc, data)
    pointer = pointer_join(*parts)
    field = next((str(p) for p in reversed(parts) if isinstance(p, str)), "value")
    value = error.get("input")
    ctx = error.get("ctx", {})

    if kind == "missing":
        return diagnostic("P2F103", f"missing required field '{field}'", pointer)
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc)
        hint = did_you_mean(field, allowed)
        if field == "escalation" and "escalation" not in allowed:
            hint = "only generate_code tasks, components and defaults escalate"
        return diagnostic("P2F102", f"unknown field '{field}'", pointer, hint=hint, on_key=True)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        hint = did_you_mean(tag, TASK_TYPES) or "task types: " + ", ".join(TASK_TYPES)
        return diagnostic("P2F106", f"unknown task type '{tag}'", pointer + "/type", hint=hint)
    if kind == "union_tag_not_found":
        return diagnostic(
            "P2F103",
            "missing required field 'type'",
            pointer + "/type",
            hint="task types: " + ", ".join(TASK_TYPES),
        )
    if kind == "literal_error" and parts == ["apiVersion"]:
        return diagnostic(
            "P2F100",
            f"unsupported apiVersion {_shown(value)}",
            pointer,
            hint=f"this version of plan2flow reads '{API_VERSION}'",
        )
    if kind == "literal_error" and parts == ["kind"]:
        return diagnostic("P2F101", f"unsupported kind {_shown(value)}", pointer, hint="use 'Plan'")
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else None
        return diagnostic(
            "P2F105", f"'{field}' must be {expected}; got {_shown(value)}", pointer, hint=hint
        )
    if kind in _EXPECTED:
        hint = None
        if isinstance(value, float) and "matrix" in parts:
            hint = "YAML reads 3.10 as the number 3.1: quote version numbers ('3.10')"
        elif isinstance(value, bool) and kind == "string_type":
            hint = "YAML reads yes/no/on/off as booleans: quote the text"
        elif on_key:
            hint = None
        return diagnostic(
            "P2F104",
            f"'{field}' must be {_EXPECTED[kind]}; got {_shown(value)}",
            pointer,
            hint=hint,
            on_key=on_key,
        )
    if kind == "string_pattern_mismatch":
        rule = PATTERN_MEANINGS.get(str(ctx.get("pattern")), f"text matching {ctx.get('pattern')}")
        subject = f"key {value!r}" if on_key else f"'{field}'"
        got = "" if on_key else f"; got {value!r}"
        return diagnostic(
            "P2F105",
            f"{subject} must be {rule}{got}",
            pointer,
            on_key=on_key,
        )
    message = error["msg"].removeprefix("Value error, ")
    if kind not in {"value_error", "assertion_error"}:
        message = message.replace("Input should", "must", 1)
        message = f"'{field}' {message[0].lower()}{message[1:]}; got {_shown(value)}"
    return diagnostic("P2F105", message, pointer)


def _translate_all(error: ValidationError, data: Any) -> list[Diagnostic]:
    """One diagnostic per place. A value that failed every branch of a union (`str | int |
    bool`) gets one: the branch its type matched, if one did, else the list of types."""
    groups: dict[str, list[tuple[Diagnostic, str]]] = {}
    for details in error.errors(include_url=False):
        item = _translate(details, data)
        key = item.pointer + ("#key" if item.on_key else "")
        groups.setdefault(key, []).append((item, details["type"]))
    found = []
    for group in groups.values():
        matched = [item for item, kind in group if kind not in _EXPECTED]
        if len(group) == 1 or matched:
            found.append((matched or [group[0][0]])[0])
            continue
        first = group[0][0]
        options = list(dict.fromkeys(_EXPECTED[kind] for _, kind in group))
        expected = ", ".join(options[:-1]) + " or " + options[-1]
        field = first.message.split("'")[1]
        got = first.message.rsplit("; got ", 1)[1]
        found.append(dataclasses.replace(first, message=f"'{field}' must be {expected}; got {got}"))
    return found


def _too_many_tasks(data: dict[str, Any], limits: Limits) -> Diagnostic | None:
    """P2F105 when the plan writes more tasks and components than the limit, counted on the raw
    lists so that a plan over it costs no validation at all."""
    counts = {
        key: len(data[key]) if isinstance(data.get(key), list) else 0
        for key in ("tasks", "components")
    }
    if sum(counts.values()) <= limits.max_tasks:
        return None
    largest = max(counts, key=lambda key: counts[key])
    return diagnostic(
        "P2F105",
        f"the plan has {counts['tasks']} tasks and {counts['components']} components; the limit "
        f"is {limits.max_tasks} together",
        f"/{largest}",
        hint="split the plan",
    )


def check_schema(
    data: dict[str, Any], limits: Limits = DEFAULT_LIMITS
) -> tuple[ValidatedPlan, list[Diagnostic]]:
    """Validate a plan against the models; return its valid parts and every schema error."""
    too_many = _too_many_tasks(data, limits)
    if too_many is not None:
        return _empty_plan(), [too_many]
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as error:
        diagnostics = _translate_all(error, data)
    else:
        return _validated(spec, data), []

    if any(d.code == "P2F100" for d in diagnostics):
        # Another apiVersion is another language: its other errors would only be noise.
        return _empty_plan(), [d for d in diagnostics if d.code == "P2F100"]
    return _partial(data, diagnostics), diagnostics


def _validated(spec: PlanSpec, data: dict[str, Any]) -> ValidatedPlan:
    return ValidatedPlan(
        spec=spec,
        task_pointers=tuple(f"/tasks/{i}" for i in range(len(spec.tasks))),
        component_pointers=tuple(f"/components/{i}" for i in range(len(spec.components))),
    )


def _empty_plan() -> ValidatedPlan:
    spec = PlanSpec.model_validate(
        {"apiVersion": API_VERSION, "kind": "Plan", "metadata": {"name": "invalid"}}
    )
    return ValidatedPlan(spec, (), ())


_PLAN_FIELDS = {f.alias or name for name, f in PlanSpec.model_fields.items()}


def _partial(data: dict[str, Any], diagnostics: list[Diagnostic]) -> ValidatedPlan:
    """The valid parts of an invalid plan: sections, tasks and components that pass on their own."""
    broken = {d.pointer.split("/")[1] for d in diagnostics if d.pointer.count("/") >= 1}
    top: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Plan",
        "metadata": {"name": "invalid"},
    }
    for key in ("metadata", "params", "defaults", "schedule"):
        if key in data and key not in broken:
            top[key] = data[key]
    spec = PlanSpec.model_validate(top)

    tasks, task_pointers, unchecked = [], [], set()
    raw_tasks = data.get("tasks")
    for index, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        try:
            tasks.append(_TASK.validate_python(raw))
            task_pointers.append(f"/tasks/{index}")
        except ValidationError:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                unchecked.add(raw["id"])

    components, component_pointers, unchecked_components = [], [], set()
    raw_components = data.get("components")
    for index, raw in enumerate(raw_components if isinstance(raw_components, list) else []):
        try:
            components.append(_COMPONENT.validate_python(raw))
            component_pointers.append(f"/components/{index}")
        except ValidationError:
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                unchecked_components.add(raw["name"])

    delivery = None
    if isinstance(data.get("delivery"), dict):
        try:
            delivery = _DELIVERY.validate_python(data["delivery"])
        except ValidationError:
            unchecked.update({"assemble", "package", "deploy"})

    spec = spec.model_copy(update={"tasks": tasks, "components": components, "delivery": delivery})
    return ValidatedPlan(
        spec=spec,
        task_pointers=tuple(task_pointers),
        component_pointers=tuple(component_pointers),
        unchecked_ids=frozenset(unchecked),
        unchecked_components=frozenset(unchecked_components),
    )
