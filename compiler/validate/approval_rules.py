"""Checks on `approval` tasks that their model alone cannot make: options named by `branch` and
`on_timeout` exist, form fields are well-typed, a `notify.webhook` is an http(s) URL with a
host, and the step settings an approval ignores are not written (a plan that says `retries: 3`
on an approval would otherwise be silently wrong)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import Diagnostic, diagnostic
from ..spec.approval import (
    FAIL_ON_TIMEOUT,
    RESERVED_FORM_FIELDS,
    ApprovalParams,
    FormField,
)
from ..spec.tasks import ApprovalTask
from .plan_rules import ACCEPTED_TYPES
from .schema import ValidatedPlan, json_type
from .suggest import did_you_mean

FORM_TYPE_NAMES = {
    "boolean": "a boolean (true or false)",
    "enum": "a string",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
}
"""Form field type → what its default must be, in words."""


def _undeclared(what: str, name: str, options: list[str], pointer: str, on_key: bool) -> Diagnostic:
    hint = did_you_mean(name, options) or "options: " + ", ".join(dict.fromkeys(options))
    return diagnostic(
        "P2F111", f"{what} '{name}' is not one of the options", pointer, hint=hint, on_key=on_key
    )


def _step_problems(task: ApprovalTask, pointer: str) -> list[Diagnostic]:
    problems = []
    if task.retries is not None:
        problems.append(
            diagnostic(
                "P2F105",
                f"approval task '{task.id}' is never retried",
                f"{pointer}/retries",
                hint="remove 'retries'",
            )
        )
    if task.timeout_seconds is not None:
        problems.append(
            diagnostic(
                "P2F105",
                f"approval task '{task.id}' waits until params.timeout_seconds",
                f"{pointer}/timeout_seconds",
                hint="move it to params.timeout_seconds",
            )
        )
    return problems


def _option_problems(params: ApprovalParams, pointer: str) -> list[Diagnostic]:
    problems = []
    seen: set[str] = set()
    for index, option in enumerate(params.options):
        if option in seen:
            problems.append(
                diagnostic(
                    "P2F105",
                    f"option '{option}' is listed twice",
                    f"{pointer}/options/{index}",
                    hint="remove one",
                )
            )
        seen.add(option)
    for option in params.branch:
        if option not in seen:
            where = f"{pointer}/branch/{option}"
            problems.append(_undeclared("branch option", option, params.options, where, True))
    if params.on_timeout != FAIL_ON_TIMEOUT and params.on_timeout not in seen:
        problems.append(
            _undeclared(
                "on_timeout", params.on_timeout, params.options, f"{pointer}/on_timeout", False
            )
        )
    elif params.on_timeout != FAIL_ON_TIMEOUT and params.mode == "suspend":
        problems.append(
            diagnostic(
                "P2F105",
                "the deadline of a suspended approval fails its run: no process is left to "
                f"answer '{params.on_timeout}'",
                f"{pointer}/on_timeout",
                hint="use on_timeout: fail, or mode: pause",
            )
        )
    return problems


def _field_problems(name: str, field: FormField, pointer: str) -> list[Diagnostic]:
    problems = []
    if name in RESERVED_FORM_FIELDS:
        problems.append(
            diagnostic(
                "P2F105",
                f"form field name '{name}' is reserved",
                pointer,
                hint="the answer holds 'option' and 'respondent' itself: rename the field",
                on_key=True,
            )
        )
    if field.type == "enum" and not field.values:
        problems.append(
            diagnostic(
                "P2F103",
                "missing required field 'values'",
                pointer,
                hint="an enum field lists its choices in 'values'",
            )
        )
    if field.type != "enum" and field.values:
        problems.append(
            diagnostic(
                "P2F105",
                f"'values' applies to enum fields; '{name}' is {field.type}",
                f"{pointer}/values",
                hint="remove 'values', or make the field type: enum",
            )
        )
    default = field.default
    if default is None:
        return problems
    where = f"{pointer}/default"
    accepted = ACCEPTED_TYPES["string" if field.type == "enum" else field.type]
    if field.required:
        problems.append(
            diagnostic(
                "P2F105",
                f"required form field '{name}' has a default",
                where,
                hint="remove the default, or set required: false",
            )
        )
    elif json_type(default) not in accepted:
        problems.append(
            diagnostic(
                "P2F104",
                f"default of form field '{name}' must be {FORM_TYPE_NAMES[field.type]}; "
                f"got {json_type(default)} {default!r}",
                where,
            )
        )
    elif field.type == "enum" and field.values and default not in field.values:
        hint = did_you_mean(str(default), field.values) or "values: " + ", ".join(field.values)
        problems.append(
            diagnostic(
                "P2F111",
                f"default of form field '{name}' is not one of its values",
                where,
                hint=hint,
            )
        )
    return problems


def webhook_problem(url: str) -> str | None:
    """What is wrong with a webhook URL written in a plan, or ``None``. A URL holding a
    ``${{ params.x }}`` expression is known only at run time, which checks it again.

    >>> webhook_problem("https://chat.example/hooks/T1") is None
    True
    >>> webhook_problem("https:///hooks")
    'it names no host'
    """
    if "${{" in url:
        return None
    if any(c.isspace() for c in url):
        return "it holds white space"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as error:
        return f"it is not a URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs are posted to"
    if not parts.hostname:
        return "it names no host"
    return None


def _notify_problems(params: ApprovalParams, pointer: str) -> list[Diagnostic]:
    if params.notify is None:
        return []
    problem = webhook_problem(params.notify.webhook)
    if problem is None:
        return []
    return [
        diagnostic(
            "P2F105",
            f"notify.webhook {params.notify.webhook!r} cannot be posted to: {problem}",
            f"{pointer}/notify/webhook",
            hint="write an http:// or https:// URL, such as https://chat.example/hooks/T1",
        )
    ]


def check_approvals(plan: ValidatedPlan) -> list[Diagnostic]:
    """Every problem of every approval task, each at its own place."""
    problems = []
    for task, pointer in zip(plan.spec.tasks, plan.task_pointers, strict=True):
        if not isinstance(task, ApprovalTask):
            continue
        problems += _step_problems(task, pointer)
        problems += _option_problems(task.params, f"{pointer}/params")
        problems += _notify_problems(task.params, f"{pointer}/params")
        for name, field in task.params.form.items():
            problems += _field_problems(name, field, f"{pointer}/params/form/{name}")
    return problems
