"""The answer an approval waits for, as a Prefect ``RunInput``: built from the task's params so
that the server checks every answer against its JSON schema (options and enum fields are
``Literal``s, which the schema keeps as ``enum``), the Prefect UI draws it as the Resume form,
and the flow validates the loaded answer once more.

Built with ``pydantic.create_model`` rather than ``RunInput.with_initial_data``, which rebuilds
fields from their annotations and drops their constraints (see the shared escalation notes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from prefect.input import RunInput

FORM_PREFIX = "form_"
"""Form fields live under this prefix in the model, with the plan's name as their alias: a
plan may name a field like a pydantic attribute (`json`, `copy`) without shadowing it."""

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _choice(values: list[str]) -> Any:
    return Literal[tuple(values)]


def _field(name: str, field: Mapping[str, Any]) -> tuple[Any, Any]:
    kind = _choice(field["values"]) if field["type"] == "enum" else _TYPES[field["type"]]
    info: dict[str, Any] = {"alias": name, "title": name, "description": field["description"]}
    if field["required"]:
        if field["type"] == "string":
            info["min_length"] = 1
        return kind, pydantic.Field(**info)
    if field["default"] is not None:
        return kind, pydantic.Field(default=field["default"], **info)
    return kind | None, pydantic.Field(default=None, **info)


def answer_model(task_id: str, params: Mapping[str, Any], description: str) -> type[RunInput]:
    """The ``RunInput`` of one approval: `option`, `respondent`, then the form's fields."""
    respondents = list(params["respondents"])
    respondent: Any = _choice(respondents) if respondents else str
    fields: dict[str, Any] = {
        "option": (
            _choice(list(params["options"])),
            pydantic.Field(title="option", description="Your answer."),
        ),
        "respondent": (
            respondent,
            pydantic.Field(
                title="respondent",
                description="Who answers (a name: plan2flow has no accounts yet).",
                min_length=1,
            ),
        ),
    }
    for name, field in sorted(params["form"].items()):
        fields[FORM_PREFIX + name] = _field(name, field)
    model: type[RunInput] = pydantic.create_model(
        "Approval_" + "".join(c if c.isalnum() else "_" for c in task_id),
        __base__=RunInput,
        **fields,
    )
    model._description = description  # as with_initial_data does
    return model


def form_data(answer: pydantic.BaseModel) -> dict[str, Any]:
    """The form's values of an answer, by the plan's field names."""
    dumped = answer.model_dump(by_alias=True)
    return {key: value for key, value in dumped.items() if key not in ("option", "respondent")}


def check_answer(model: type[RunInput], answer: Mapping[str, Any]) -> pydantic.BaseModel:
    """Validate an answer again, as the flow reads it: a ValidationError names what is wrong."""
    return model.model_validate(dict(answer))
