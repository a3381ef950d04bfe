"""`plan2flow approvals list|show|respond`: the approvals waiting on the Prefect server, answered
from a terminal (the same answers as the Prefect UI's Resume form; see docs/approvals.md).

Exit status: 0 done, 1 the answer was refused (the run stays paused) or the run waits for no
approval, 2 usage (a malformed `--field`, no server).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .app import EXIT_INVALID, EXIT_USAGE, app, consoles, say
from .server_commands import _fail, _require_server, _ui_url

approvals_app = typer.Typer(
    help="Approvals waiting for an answer: list, show and answer them.", no_args_is_help=True
)
app.add_typer(approvals_app, name="approvals")


@approvals_app.command("list")
def list_command(
    plan: Annotated[str | None, typer.Option("--plan", help="Only this plan's approvals.")] = None,
) -> None:
    """List the approvals waiting for an answer, oldest first."""
    console, err = consoles()
    api_url = _require_server(err)
    from plan2flow.server.approvals import list_approvals
    from plan2flow.server.remote import RemoteError

    try:
        found = list_approvals(api_url, plan)
    except RemoteError as error:
        raise _fail(err, str(error)) from None
    if not found:
        say(console, f"no approvals waiting{f' in plan {plan}' if plan else ''}")
    for item in found:
        say(
            console,
            f"{item.flow_run_id}  {item.plan}/{item.task}  {item.state}  "
            f"options: {', '.join(item.options)}  until {item.deadline[:19].replace('T', ' ')} UTC",
        )


@approvals_app.command("show")
def show_command(
    flow_run_id: Annotated[str, typer.Argument(help="The flow run waiting for the approval.")],
) -> None:
    """Show what an approval asks: its text, options, form and who may answer."""
    console, err = consoles()
    api_url = _require_server(err)
    from plan2flow.server.approvals import NoSuchApproval, show_approval
    from plan2flow.server.remote import RemoteError

    try:
        item = show_approval(api_url, flow_run_id)
    except NoSuchApproval as error:
        raise _fail(err, str(error), EXIT_INVALID) from None
    except RemoteError as error:
        raise _fail(err, str(error)) from None
    what = "escalation (human tier)" if item.kind == "escalation" else "approval"
    say(console, f"{what} {item.task} of plan {item.plan} ({item.state})")
    say(console, f"options: {', '.join(item.options)}")
    say(console, f"respondents: {', '.join(item.respondents) or 'anyone'}")
    for name, field in sorted(item.form.items()):
        extra = f" one of {', '.join(field['values'])}" if field["type"] == "enum" else ""
        need = "required" if field["required"] else f"default {field['default']!r}"
        say(console, f"field {name}: {field['type']}{extra}, {need}  {field['description']}")
    say(console, f"deadline: {item.deadline} (then {item.on_timeout})")
    say(console, f"UI: {_ui_url(api_url)}/runs/flow-run/{item.flow_run_id}")
    say(console, "")
    say(console, item.description)


def _fields(values: list[str]) -> dict[str, str]:
    fields = {}
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name:
            _, err = consoles()
            raise _fail(err, f"--field takes NAME=VALUE; got {value!r}", EXIT_USAGE)
        fields[name] = text
    return fields


@approvals_app.command("respond")
def respond_command(
    flow_run_id: Annotated[str, typer.Argument(help="The flow run waiting for the approval.")],
    option: Annotated[str, typer.Option("--option", help="The answer: one of the options.")],
    field: Annotated[
        list[str] | None, typer.Option("--field", help="A form field: NAME=VALUE (repeatable).")
    ] = None,
    who: Annotated[
        str | None,
        typer.Option("--as", help="Who answers (default: the OS user; there are no accounts yet)."),
    ] = None,
) -> None:
    """Answer an approval; a refused answer says why and leaves the run paused."""
    console, err = consoles()
    fields = _fields(field or [])
    api_url = _require_server(err)
    from plan2flow.server.approvals import ApprovalRefused, NoSuchApproval, respond, respondent
    from plan2flow.server.remote import RemoteError

    name = respondent(who)
    try:
        item = respond(api_url, flow_run_id, option, fields, name)
    except ApprovalRefused as error:
        raise _fail(err, f"{error}; the run stays paused", EXIT_INVALID) from None
    except NoSuchApproval as error:  # nothing waits: there is no pause to stay in
        raise _fail(err, str(error), EXIT_INVALID) from None
    except RemoteError as error:
        raise _fail(err, str(error)) from None
    say(console, f"answered {item.plan}/{item.task} of run {flow_run_id}: {option} (as {name})")
