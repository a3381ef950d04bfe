"""The params of an `approval` task: a question put to people while the flow run waits.

The flow pauses with a form built from these params (Prefect's Resume form, or
`plan2flow approvals respond`); the answer is the task's `decision` artifact, and it decides
which of the task's downstream tasks run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

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


WebhookUrl = Annotated[
    str,
    StringConstraints(
        pattern=pattern(
            r"^(https?://.+|\$\{\{\s*params\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}.*)$",
            "an http:// or https:// URL, or a ${{ params.x }} expression that holds one",
        ),
        max_length=2000,
    ),
    Field(
        description="Where the request is posted: an `http://` or `https://` URL, or "
        "`${{ params.x }}` (a chat webhook's URL holds a secret: keep it out of the plan)."
    ),
]


class Notify(Model):
    """Tell people an answer is wanted: the request is posted as JSON to a webhook."""

    webhook: WebhookUrl
    """The URL the request is posted to, such as a chat's incoming webhook."""
    attempts: Annotated[int, Field(ge=1, le=10)] = 5
    """How many times to try (connection errors, 408, 429 and 5xx are tried again)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    """How long one attempt may take."""


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
    notify: Notify | None = None
    """Post the request to a webhook when it is made; a webhook that fails never fails it."""

    @model_serializer(mode="wrap")
    def _without_unset_notify(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No `notify` key when there is none: the graphs, and so the hashes, of approvals
        written before it existed stay the same."""
        data: dict[str, Any] = handler(self)
        if data.get("notify") is None:
            data.pop("notify", None)
        return data
