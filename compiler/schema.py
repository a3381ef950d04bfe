"""The published JSON Schema of PlanSpec v1, generated from the models.

``python -m plan2flow.compiler.schema [PATH]`` writes it (default: print to stdout); the
repository's copy lives in ``schemas/plan.schema.json`` and a test fails when it drifts.
"""

from __future__ import annotations

import functools
import json
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


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The PlanSpec JSON Schema (Draft 2020-12) as a dict. Callers must not mutate it."""
    schema = PlanSpec.model_json_schema(by_alias=True)
    _close_objects(schema)
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
