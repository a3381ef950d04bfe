"""The params of an `approval` task: a question put to people while the flow run waits.

The flow pauses with a form built from these params (Prefect's Resume form, or
`plan2flow approvals respond`); the answer is the task's `decision` artifact, and it decides
which of the task's downstream tasks run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .base import Model, PythonName, TaskRef, pattern

APPROVAL_OUTPUT = "decision"
"""The artifact every approval task produces: the answer as JSON."""

REJECT_OPTION = "reject"
"""Without `branch`, the option that skips every downstream task."""

FAIL_ON_TIMEOUT = "fail"
"""`on_timeout` value that fails the task (its downstream tasks end not run)."""

RESERVED_FORM_FIELDS = ("option", "respondent")
"""Names the answer itself uses: a form field may not take them."""

FORM_FIELD_TYPES = ("boolean", "enum", "integer", "number", "string")

DEFAULT_TIMEOUT_SECONDS = 86400.0
"""How long an approval waits when the plan does not say: one day."""

OptionName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "an option name of letters, digits, '_', '.' and '-' that starts with a letter or "
            "digit",
        ),
        max_length=100,
    ),
    Field(description="An answer the respondent can choose, such as `approve`."),
]

RespondentName = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$",
            "a user name of letters, digits, '_', '.', '@' and '-'",
        ),
        max_length=100,
    ),
    Field(description="Who may answer: a user name (`--as` or the OS user, until accounts exist)."),
]


class FormField(Model):
    """One field of the form the respondent fills in besides choosing an option."""

    type: Literal["boolean", "enum", "integer", "number", "string"]
    """The value's type; `enum` is one of `values`."""
    required: bool = False
    """The respondent must give a value (a required field has no default)."""
    default: str | int | float | bool | None = None
    """The value the form starts with."""
    description: str = ""
    """Shown beside the field."""
    values: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = []
    """The choices of an `enum` field."""


class ApprovalParams(Model):
    """A question put to people: the flow run waits for an answer or the deadline."""

    body: str = ""
    """Markdown shown with the form; `${{ params.x }}` and `${{ inputs.x }}` are filled in."""
    options: Annotated[list[OptionName], Field(min_length=1, max_length=50)] = [
        "approve",
        REJECT_OPTION,
    ]
    """The answers to choose from. Without `branch`, `reject` skips every downstream task."""
    form: dict[PythonName, FormField] = {}
    """Typed fields the respondent fills in; their values are part of the decision."""
    branch: dict[OptionName, list[TaskRef]] = {}
    """Option → the direct downstream tasks that run when it is chosen; the others are skipped."""
    respondents: list[RespondentName] = []
    """Who may answer; empty: anyone."""
    timeout_seconds: Annotated[float, Field(gt=0, le=31_536_000)] = DEFAULT_TIMEOUT_SECONDS
    """How long to wait for an answer."""
    on_timeout: OptionName = FAIL_ON_TIMEOUT
    """What the deadline answers: one of `options`, or `fail` (the task fails)."""
    mode: Literal["pause", "suspend"] = "pause"
    """`pause` keeps the flow's process waiting; `suspend` releases the worker (deployments)."""
