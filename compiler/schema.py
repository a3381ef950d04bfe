"""The published JSON Schema of PlanSpec v1, generated from the models.

``python -m plan2flow.compiler.schema [PATH]`` writes it (default: print to stdout); the
repository's copy lives in ``schemas/plan.schema.json`` and a test fails when it drifts.
"""

from __future__ import annotations

import functools
import json
import keyword
import sys
from typing import Any

from .spec import PlanSpec
from .spec.base import API_VERSION

SCHEMA_ID = "https://plan2flow.dev/schemas/plan.schema.json"


def _close_objects(node: Any) -> None:
    """Set ``additionalProperties: false`` on every object that names its properties.

    pydantic does so for models (``extra="forbid"``) but not for maps with constrained keys,
    which it writes as ``patternProperties``.
    """
    if isinstance(node, dict):
        if ("properties" in node or "patternProperties" in node) and (
            "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def _drop_discriminators(node: Any) -> None:
    """Remove OpenAPI's ``discriminator``, which is no JSON Schema keyword (ajv's strict mode
    refuses it); the ``oneOf`` beside it already selects the one branch whose ``type`` matches."""
    if isinstance(node, dict):
        node.pop("discriminator", None)
        for value in node.values():
            _drop_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _drop_discriminators(value)


def _set(kind: str) -> dict[str, Any]:
    """A subschema: the property `kind` is present and not null."""
    return {"type": "object", "required": [kind], "properties": {kind: {"not": {"type": "null"}}}}


def _non_empty(field: str, kind: str, keyword: str) -> dict[str, Any]:
    """A subschema: `field` is present and has at least one item."""
    return {
        "type": "object",
        "required": [field],
        "properties": {field: {"type": kind, keyword: 1}},
    }


def _add_plan_rules(schema: dict[str, Any]) -> None:
    """What the plan rules check beyond the models, where JSON Schema can say it too.

    Imported here: the rules' modules import this one (for field names in hints).
    """
    from .decompose.agents import AGENT_BLOCK_TYPES
    from .validate.plan_rules import ACCEPTED_TYPES

    defs = schema["$defs"]
    # Exactly one kind of schedule (P2F105).
    defs["Schedule"]["oneOf"] = [_set(kind) for kind in ("cron", "interval_seconds", "rrule")]
    # Exactly one kind of escalation tier (P2F105).
    defs["Tier"]["oneOf"] = [_set(kind) for kind in ("local", "remote", "human")]
    # Parameters become flow arguments: no Python keywords (P2F105).
    schema["properties"]["params"]["propertyNames"]["not"] = {"enum": keyword.kwlist}
    # Something to run (P2F108): non-empty tasks or components, or a non-empty delivery.
    schema["anyOf"] = [
        _non_empty("tasks", "array", "minItems"),
        _non_empty("components", "array", "minItems"),
        _non_empty("delivery", "object", "minProperties"),
    ]
    # A parameter's default and enum values have its type (P2F107).
    json_types = {"list": "array", "mapping": "object"}
    param = defs["ParamSpec"]
    param["allOf"] = [
        {
            "if": {"type": "object", "properties": {"type": {"const": name}}}
            | ({} if name == "string" else {"required": ["type"]}),
            "then": {
                "type": "object",
                "properties": {
                    "default": {"anyOf": [{"type": kind} for kind in [*accepted, "null"]]},
                    "enum": {
                        "anyOf": [
                            {
                                "type": "array",
                                "items": {
                                    "anyOf": [{"type": kind} for kind in [*accepted, "null"]]
                                },
                            },
                            {"type": "null"},
                        ]
                    },
                },
            },
        }
        for name, accepted in (
            (name, [json_types.get(t, t) for t in types]) for name, types in ACCEPTED_TYPES.items()
        )
    ]
    # Agents only for the task types that run on one (P2F208).
    agents = defs["Defaults"]["properties"]["agents"]
    agents["propertyNames"] = {"enum": sorted(AGENT_BLOCK_TYPES)}
    for task in ("NoopTask", "PythonTask", "ShellTask"):
        defs[task]["properties"]["agent"] = {
            "type": "null",
            "default": None,
            "description": "Tasks of this type run in the flow, on no agent.",
        }


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The PlanSpec JSON Schema (Draft 2020-12) as a dict. Callers must not mutate it."""
    schema = PlanSpec.model_json_schema(by_alias=True)
    _close_objects(schema)
    _drop_discriminators(schema)
    _add_plan_rules(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = f"plan2flow PlanSpec ({API_VERSION})"
    return schema


def render_schema() -> str:
    """The schema as stable, reviewable text."""
    return json.dumps(plan_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render_schema()
    if args:
        from pathlib import Path

        from .files import write_all_atomic

        write_all_atomic([(Path(args[0]), text)])
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
