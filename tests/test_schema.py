"""The published JSON Schema: generated from the models, closed, in agreement with them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from plan2flow.compiler import PlanError, compile_plan
from plan2flow.compiler.schema import main, plan_schema, render_schema

ROOT = Path(__file__).parents[1]
SCHEMA_FILE = ROOT / "schemas" / "plan.schema.json"
EXAMPLES = sorted((ROOT / "examples" / "plans").glob("*.yaml"))
# Invalid examples whose only problems are schema problems: both validators must reject them.
SCHEMA_INVALID = ["unknown-field", "missing-field", "wrong-kind", "unknown-type", "api-version"]


def test_committed_schema_matches_the_models() -> None:
    """Fails when the models change without `make schema` (or when the file is missing)."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema()


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(plan_schema())
    assert plan_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _objects(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node or "patternProperties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _objects(value, f"{path}/{index}")
    return found


# Subschemas that constrain an object defined elsewhere (the plan rules), rather than define one.
CONDITIONS = re.compile(r"/(if|then|allOf)(/|$)|^#/anyOf/|/(Schedule|Tier)/oneOf/")


def test_every_object_is_closed() -> None:
    objects = [
        (path, node) for path, node in _objects(plan_schema()) if not CONDITIONS.search(path)
    ]
    assert len(objects) > 30
    open_ones = [path for path, node in objects if node.get("additionalProperties") is not False]
    assert open_ones == []


@pytest.mark.parametrize("plan", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid_under_the_schema_and_name_it(plan: Path) -> None:
    text = plan.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../../schemas/plan.schema.json\n")
    errors = list(Draft202012Validator(plan_schema()).iter_errors(yaml.safe_load(text)))
    assert errors == []


@pytest.mark.parametrize("case", SCHEMA_INVALID)
def test_schema_and_models_reject_the_same_plans(case: Path) -> None:
    plan = ROOT / "examples" / "plans" / "invalid" / f"{case}.yaml"
    text = plan.read_text(encoding="utf-8")
    assert list(Draft202012Validator(plan_schema()).iter_errors(yaml.safe_load(text)))
    with pytest.raises(PlanError):
        compile_plan(text, plan.name)


def test_module_entry_point_writes_or_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "schema.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_schema()
    assert main([]) == 0
    assert capsys.readouterr().out == render_schema()
