"""The base model and the name patterns shared by every part of a plan."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

API_VERSION = "plan2flow/v1"

PATTERN_MEANINGS: dict[str, str] = {}
"""Each name pattern of the models → what it means, for error messages."""


def pattern(regex: str, meaning: str) -> str:
    """Register what a pattern means, so a mismatch can be explained in words."""
    PATTERN_MEANINGS[regex] = meaning
    return regex


class Model(BaseModel):
    """Strict, frozen, closed: a typo in a plan is an error, never a silently ignored field."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )


Identifier = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[A-Za-z_][A-Za-z0-9_-]*$",
            "a name of letters, digits, '_' and '-' that starts with a letter or '_'",
        ),
        max_length=100,
    ),
    Field(description="A name: letters, digits, '_' and '-', starting with a letter or '_'."),
]
"""Task ids, component names and artifact names. Dots and brackets are reserved for generated ids
(`models.test`, `test[python=3.12]`), so a written id can never collide with a generated one."""

PythonName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(r"^[A-Za-z_][A-Za-z0-9_]*$", "a Python identifier"), max_length=100
    ),
    Field(description="A Python identifier."),
]

TaskRef = Annotated[
    str,
    StringConstraints(pattern=pattern(r"^\S+$", "text without spaces"), max_length=300),
    Field(description="A task id, written or generated (`models.test`, `test[python=3.12]`)."),
]

ArtifactRef = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^\S+\.[A-Za-z_][A-Za-z0-9_-]*$",
            "a reference '<task id>.<artifact name>', such as 'extract.raw'",
        ),
        max_length=300,
    ),
    Field(description="`<task id>.<artifact name>`, such as `extract.raw` or `models.test.junit`."),
]

AgentName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[a-z0-9][a-z0-9-]*$", "a block document name (lowercase letters, digits and '-')"
        ),
        max_length=100,
    ),
    Field(description="The name of an agent block document registered with the Prefect server."),
]

Tag = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S+$")]
"""Tags share the no-spaces pattern (and its meaning) with task references."""

MatrixValue = (
    Annotated[
        str,
        StringConstraints(
            pattern=pattern(
                r"^[^\s,=\[\]]+$",
                "a value without spaces, commas, '=' or brackets (it becomes part of task ids)",
            )
        ),
    ]
    | int
    | bool
)

Matrix = Annotated[
    dict[PythonName, Annotated[list[MatrixValue], Field(min_length=1, max_length=64)]],
    Field(
        description="Axis name → values; the task is expanded into one task per combination. "
        "Quote version numbers ('3.10'): YAML reads 3.10 as the number 3.1."
    ),
]
