"""Approvals waiting on a Prefect server: list them, show one, answer one, over Prefect's REST
API (the calls the Prefect UI's Resume form makes).

An approval is a flow run paused (or suspended) with a pause key starting ``approval-``, or
``escalation-`` for the human tier of an escalation (answered the same way); the
task saved what it asks beside its form (``<state>-<key>-request``: plan, task, options,
respondents, form, deadline). An answer is checked here first (options, respondents, the form's
types), then by the server against the form's JSON schema: a refused answer leaves the run
paused, and its reason is the server's.

Who answers is ``--as`` or the OS user: plan2flow has no accounts yet, so a respondent is a
name the person gives, checked against the plan's ``respondents``, not an authenticated user.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from collections.abc import Mapping
from typing import Any

from .errors import OperationError
from .remote import Api

KEY_PREFIX = "approval-"
"""What the runtime's pause keys of approvals start with (plan2flow.flows.approvals)."""
ESCALATION_PREFIX = "escalation-"
"""What the pause keys of an escalation's human tier start with (its form's options: accept,
edit, reject, retry; fields ``code`` and ``comment``; plan2flow.flows.escalation_desk)."""
PAGE = 200


class ApprovalRefused(OperationError):
    """An answer that was not accepted: the run stays paused (exit status 1)."""

    exit_status = 1


class NoSuchApproval(OperationError):
    """The flow run does not exist or is not waiting for an approval (exit status 1)."""

    exit_status = 1


@dataclasses.dataclass(frozen=True)
class Approval:
    """One approval waiting for an answer."""

    flow_run_id: str
    flow_run_name: str
    state: str
    plan: str
    task: str
    options: tuple[str, ...]
    respondents: tuple[str, ...]
    form: dict[str, Any]
    deadline: str
    on_timeout: str
    description: str = ""
    kind: str = "approval"
    """``approval``, or ``escalation`` for the human tier of an escalation."""


def respondent(given: str | None) -> str:
    """The name an answer is given under: ``--as``, else the OS user (no accounts yet)."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid:{os.getuid()}"


def _approval(api: Api, run: Mapping[str, Any], *, described: bool) -> Approval | None:
    state = run.get("state") or {}
    details = state.get("state_details") or {}
    key = details.get("pause_key") or ""
    keyset = details.get("run_input_keyset") or {}
    ours = key.startswith((KEY_PREFIX, ESCALATION_PREFIX))
    if state.get("type") != "PAUSED" or not ours or not keyset:
        return None
    base = keyset["schema"].removesuffix("-schema")
    try:
        request = api.call("GET", f"/flow_runs/{run['id']}/input/{base}-request")
        description = (
            api.call("GET", f"/flow_runs/{run['id']}/input/{keyset['description']}")
            if described
            else ""
        )
    except LookupError:
        return None  # paused, its form not saved yet
    return Approval(
        flow_run_id=str(run["id"]),
        flow_run_name=str(run.get("name") or ""),
        state=str(state.get("name") or "Paused"),
        plan=str(request["plan"]),
        task=str(request["task"]),
        options=tuple(request["options"]),
        respondents=tuple(request["respondents"]),
        form=dict(request["form"]),
        deadline=str(request["deadline"]),
        on_timeout=str(request["on_timeout"]),
        description=str(description),
        kind=str(request.get("kind") or "approval"),
    )


def list_approvals(api_url: str, plan: str | None = None) -> list[Approval]:
    """Every approval waiting on the server (of one plan), oldest first."""
    body: dict[str, Any] = {
        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
        "sort": "START_TIME_ASC",
        "limit": PAGE,
    }
    if plan:
        body["flows"] = {"name": {"any_": [plan]}}
    found = []
    with Api(api_url) as api:
        for run in api.call("POST", "/flow_runs/filter", body):
            approval = _approval(api, run, described=False)
            if approval is not None:
                found.append(approval)
    return found


def show_approval(api_url: str, flow_run_id: str) -> Approval:
    """The approval a flow run waits for, with the text of its form."""
    with Api(api_url) as api:
        try:
            run = api.call("GET", f"/flow_runs/{flow_run_id}")
        except LookupError:
            raise NoSuchApproval(f"no flow run {flow_run_id}") from None
        approval = _approval(api, run, described=True)
    if approval is None:
        state = (run.get("state") or {}).get("name", "no state")
        raise NoSuchApproval(f"flow run {flow_run_id} is not waiting for an approval ({state})")
    return approval


def _typed(name: str, text: str, field: Mapping[str, Any]) -> Any:
    kind = field["type"]
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        raise ApprovalRefused(f"field {name!r} must be {kind}; got {text!r}") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ApprovalRefused(f"field {name!r} must be true or false; got {text!r}")
        return text.lower() == "true"
    if kind == "enum" and text not in field["values"]:
        raise ApprovalRefused(
            f"field {name!r} must be one of {', '.join(field['values'])}; got {text!r}"
        )
    return text


def answer_of(
    approval: Approval, option: str, fields: Mapping[str, str], who: str
) -> dict[str, Any]:
    """The run input of an answer, with the form's values typed; refused here when it cannot
    be right (so the person hears why in plan2flow's words before the server's), such as an
    escalation's edit whose code is missing or does not parse."""
    if option not in approval.options:
        raise ApprovalRefused(
            f"{option!r} is not an option of {approval.task!r}: {', '.join(approval.options)}"
        )
    if approval.respondents and who not in approval.respondents:
        raise ApprovalRefused(
            f"{who!r} may not answer {approval.task!r}: respondents are "
            f"{', '.join(approval.respondents)}"
        )
    unknown = sorted(set(fields) - set(approval.form))
    if unknown:
        raise ApprovalRefused(
            f"{approval.task!r} has no field {unknown[0]!r}"
            + (f"; its fields: {', '.join(sorted(approval.form))}" if approval.form else "")
        )
    if approval.kind == "escalation" and option == "edit":
        from plan2flow.escalation.human import edit_problem

        problem = edit_problem(fields.get("code"))
        if problem is not None:
            raise ApprovalRefused(f"the edit of {approval.task!r} is refused: {problem}")
    answer: dict[str, Any] = {"option": option, "respondent": who}
    for name, text in fields.items():
        answer[name] = _typed(name, text, approval.form[name])
    return answer


def respond(
    api_url: str, flow_run_id: str, option: str, fields: Mapping[str, str], who: str
) -> Approval:
    """Answer an approval; :class:`ApprovalRefused` with the reason when it is not accepted."""
    approval = show_approval(api_url, flow_run_id)
    answer = answer_of(approval, option, fields, who)
    with Api(api_url) as api:
        result = api.call("POST", f"/flow_runs/{flow_run_id}/resume", {"run_input": answer})
    if result.get("status") != "ACCEPT":
        reason = (result.get("details") or {}).get("reason") or result.get("status")
        raise ApprovalRefused(f"the server refused the answer: {reason}")
    return approval
