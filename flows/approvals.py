"""Approval tasks at run time: the flow run pauses with the task's form until someone answers
(the Prefect UI's Resume form, ``plan2flow approvals respond``, or Prefect's REST API) or the
deadline answers for them; the answer is the task's ``decision`` artifact, and it decides which
of the task's downstream tasks run. A task skipped by an answer ends ``Skipped``: a completed
state (the flow run completes), distinct from ``UpstreamFailed``.

The answer comes from people through the server: it is data. It is checked by the server
against the form's JSON schema, validated again here, and only ever written as JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input.actions import create_flow_run_input, read_flow_run_input
from prefect.states import Completed

from .approval_events import announce
from .approval_form import answer_model, check_answer, form_data
from .approval_notify import Delivery, deliver, host_of, notify_payload, run_link
from .artifacts import TaskOutput
from .errors import TaskFailure
from .executors import TaskContext
from .graph import GraphTask
from .pausing import pause_for_input
from .templates import resolve_params
from .workspace import RunPlace, safe_name

SKIPPED = "Skipped"
"""The terminal state of a task an answer did not choose (Airflow's ``skipped``)."""
DECISION = "decision"
"""The artifact of every approval (the compiler adds it)."""
REJECT = "reject"
"""Without ``branch``, the option that skips every downstream task (docs/planspec.md)."""
FAIL = "fail"
POLL_SECONDS = 1
"""How often the waiting flow asks the server whether it was resumed."""
KEY_PREFIX = "approval-"
"""Pause keys of approvals start with it; the CLI finds approvals by it."""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """What a skipped task returns; its downstream tasks are skipped in turn."""

    task_id: str
    reason: str


def pause_key(task_id: str) -> str:
    """The pause key of an approval: lowercase letters, digits and dashes (what Prefect's input
    keys allow), the same for the same task in every attempt, so a resumed suspend finds it."""
    readable = "".join(c if c.isalnum() and c.isascii() else "-" for c in task_id.lower())[:40]
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:12]
    return f"{KEY_PREFIX}{readable.strip('-')}-{digest}"


def skipped_by(option: str, params: Mapping[str, Any], downstream: tuple[str, ...]) -> list[str]:
    """The direct downstream tasks an answer skips: with ``branch``, all but the chosen
    option's; without, all of them for ``reject`` and none otherwise."""
    branch: Mapping[str, list[str]] = params.get("branch") or {}
    if branch:
        chosen = set(branch.get(option, ()))
        return [task for task in downstream if task not in chosen]
    return list(downstream) if option == REJECT else []


def _deadline(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def describe(place: RunPlace, context: TaskContext, deadline: dt.datetime) -> str:
    """The markdown shown above the Resume form: the body, then what the answer is about."""
    params = context.params
    task = context.task
    lines = [
        f"### Approval `{task.id}` of plan `{place.plan}`",
        "",
        params["body"] or "(no text)",
        "",
        "| About this answer | |",
        "|---|---|",
        f"| Options | {', '.join(f'`{o}`' for o in params['options'])} |",
        f"| Who may answer | {', '.join(params['respondents']) or 'anyone'} |",
        f"| Deadline | {deadline:%Y-%m-%d %H:%M:%S} UTC, then `{params['on_timeout']}` |",
        f"| Flow run | `{place.flow_run_id}` |",
        f"| Graph | `{place.graph_hash}` |",
    ]
    for name, path in sorted(context.inputs.items()):
        lines.append(f"| Input `{name}` | `{path}` |")
    lines += [
        "",
        "From a terminal: `plan2flow approvals respond "
        f"{place.flow_run_id} --option {params['options'][0]} --as NAME`",
    ]
    return "\n".join(lines)


def _request(place: RunPlace, context: TaskContext, deadline: dt.datetime) -> dict[str, Any]:
    params = context.params
    return {
        "plan": place.plan,
        "task": context.task.id,
        "graph_hash": place.graph_hash,
        "options": list(params["options"]),
        "respondents": list(params["respondents"]),
        "form": params["form"],
        "on_timeout": params["on_timeout"],
        "deadline": deadline.isoformat(),
        "mode": params["mode"],
    }


def _wait(
    place: RunPlace, context: TaskContext, model: Any, key: str, deadline: dt.datetime
) -> Any:
    params = context.params
    timeout = max(1, math.ceil(params["timeout_seconds"]))
    request = _request(place, context, deadline)
    base = ("suspended" if params["mode"] == "suspend" else "paused") + f"-{key}"
    run_id = UUID(place.flow_run_id)
    if read_flow_run_input(f"{base}-request", flow_run_id=run_id) is None:  # once per run
        create_flow_run_input(key=f"{base}-request", value=request, flow_run_id=run_id)
    if params["mode"] == "suspend":
        return suspend_flow_run(wait_for_input=model, timeout=timeout, key=key)
    return pause_for_input(
        model, key=key, timeout=params["timeout_seconds"], poll_seconds=POLL_SECONDS
    )


def answer_file(place: RunPlace, task_id: str) -> Path:
    """Where the flow of a suspended approval leaves the answer for the task (the run's
    workspace is the same when the resumed run starts again)."""
    return Path(place.workspace) / ".approvals" / f"{safe_name(task_id)}.json"


def run_approval(place: RunPlace, context: TaskContext) -> None:
    """Ask, wait, and write the answer as the task's ``decision`` artifact. A suspended
    approval was asked by the flow itself (:func:`ask_in_flow`): its answer is in a file."""
    task, params = context.task, context.params
    if params["mode"] == "suspend":
        given = answer_file(place, task.id)
        if not given.exists():
            raise TaskFailure(f"approval {task.id!r}: the flow left no answer at {given}")
        answer = json.loads(given.read_text(encoding="utf-8"))
        decision = _decision(
            place,
            task,
            answer["option"],
            answer["data"],
            answer["respondent"],
            timed_out=False,
            skipped=skipped_by(answer["option"], params, task.downstream),
        )
    else:
        decision = _ask_and_wait(place, context)
    context.outputs[DECISION].write_text(
        json.dumps(decision, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )


def _announce_request(place: RunPlace, context: TaskContext, deadline: dt.datetime) -> None:
    """``approval.requested`` on the bus, to Prefect and the journal; and to the webhook of
    ``notify``, when the task has one."""
    task_id, params = context.task.id, context.params
    announce(
        place,
        "requested",
        task_id,
        options=list(params["options"]),
        respondents=list(params["respondents"]),
        deadline=deadline.isoformat(),
        mode=params["mode"],
    )
    notify: Mapping[str, Any] = params.get("notify") or {}
    url = str(notify.get("webhook") or "").strip()
    if not url:  # no notify, or a `${{ params.x }}` left empty: nobody to tell
        return
    request = {**_request(place, context, deadline), "flow_run_id": place.flow_run_id}
    payload = notify_payload(request, params["body"], run_link(place.flow_run_id))

    def failed(outcome: Delivery) -> None:
        announce(
            place,
            "notify_failed",
            task_id,
            host=host_of(url),
            attempts=outcome.attempts,
            status=outcome.status,
            error=outcome.error,
        )

    deliver(url, payload, notify, failed, wait=params["mode"] == "suspend")


def _ask_and_wait(place: RunPlace, context: TaskContext) -> dict[str, Any]:
    task, params = context.task, context.params
    deadline = _deadline(params["timeout_seconds"])
    key = pause_key(task.id)
    model = answer_model(task.id, params, describe(place, context, deadline))
    _announce_request(place, context, deadline)
    answer = _wait(place, context, model, key, deadline)
    if answer is None:
        option = params["on_timeout"]
        skipped = [] if option == FAIL else skipped_by(option, params, task.downstream)
        announce(place, "timed_out", task.id, on_timeout=option, skipped=skipped)
        if option == FAIL:
            raise TaskFailure(
                f"approval {task.id!r} was not answered within {params['timeout_seconds']:g} s"
            )
        return _decision(place, task, option, {}, "", timed_out=True, skipped=skipped)
    option, respondent, data = _accepted(place, task, params, model, answer)
    skipped = skipped_by(option, params, task.downstream)
    return _decision(place, task, option, data, respondent, timed_out=False, skipped=skipped)


def _accepted(
    place: RunPlace, task: GraphTask, params: Mapping[str, Any], model: Any, answer: Any
) -> tuple[str, str, dict[str, Any]]:
    """The answer validated again (the server checked it against the schema already), and
    announced: its option, respondent and form data."""
    checked = check_answer(model, answer.model_dump(by_alias=True))
    option, respondent = str(checked.option), str(checked.respondent)  # type: ignore[attr-defined]
    allowed = params["respondents"]
    if allowed and respondent not in allowed:
        raise TaskFailure(f"approval {task.id!r}: {respondent!r} may not answer it")
    data = form_data(checked)
    skipped = skipped_by(option, params, task.downstream)
    announce(
        place, "given", task.id, option=option, respondent=respondent, data=data, skipped=skipped
    )
    return option, respondent, data


def ask_in_flow(
    place: RunPlace, spec: GraphTask, upstream: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """A suspended approval, asked from the flow's body (Prefect suspends flows, not tasks):
    the first time, the run is suspended and this process ends (Prefect's ``Pause``), releasing
    the worker; when the resumed run starts again, the tasks before it are served from the
    cache, the same suspend finds the answer, and it is left in :func:`answer_file` for the
    task. Nothing is asked when the task will not run (an upstream failed or was skipped)."""
    if any(not isinstance(output, TaskOutput) for output in upstream.values()):
        return
    if skip_reason(spec, upstream) is not None:
        return
    flow_context = FlowRunContext.get()
    if (
        flow_context is None
        or flow_context.flow_run is None
        or not flow_context.flow_run.deployment_id
    ):
        raise TaskFailure(
            f"approval {spec.id!r} has mode: suspend, which needs a deployment's run "
            "(plan2flow deploy, then trigger); use mode: pause to run it here"
        )
    inputs = {}
    for name, ref in spec.inputs.items():
        producer, _, artifact = ref.rpartition(".")
        inputs[name] = Path(upstream[producer].artifacts[artifact].path)
    namespaces = {"params": values, "inputs": {k: str(v) for k, v in inputs.items()}, "outputs": {}}
    params = resolve_params(spec.type, spec.params, namespaces)
    workspace = Path(place.workspace)
    context = TaskContext(spec, params, inputs, {}, workspace, workspace)
    deadline = _deadline(params["timeout_seconds"])
    key = pause_key(spec.id)
    model = answer_model(spec.id, params, describe(place, context, deadline))
    if not _fired(place.flow_run_id, key):
        _announce_request(place, context, deadline)
    answer = _wait(place, context, model, key, deadline)  # the first time: Pause, the end
    option, respondent, data = _accepted(place, spec, params, model, answer)
    path = answer_file(place, spec.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"option": option, "respondent": respondent, "data": data}), encoding="utf-8"
    )


def _fired(flow_run_id: str, key: str) -> bool:
    """Whether this run was suspended under `key` already (it is the resumed run)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    return key in (run.empirical_policy.pause_keys or set())


def _decision(
    place: RunPlace,
    task: GraphTask,
    option: str,
    data: Mapping[str, Any],
    respondent: str,
    *,
    timed_out: bool,
    skipped: list[str],
) -> dict[str, Any]:
    return {
        "approval": task.id,
        "plan": place.plan,
        "flow_run_id": place.flow_run_id,
        "option": option,
        "data": dict(data),
        "respondent": respondent or None,
        "answered_at": dt.datetime.now(dt.UTC).isoformat(),
        "timed_out": timed_out,
        "skipped": skipped,
    }


def skip_reason(spec: GraphTask, upstream: Mapping[str, Any]) -> str | None:
    """Why a task is skipped: an upstream task was skipped, or an upstream approval's answer
    did not choose it; ``None`` when it runs."""
    for name, output in sorted(upstream.items()):
        if isinstance(output, Skipped):
            return f"skipped: upstream {name!r} was skipped"
    for gate in spec.approvals:
        output = upstream.get(gate)
        if not isinstance(output, TaskOutput) or DECISION not in output.artifacts:
            continue
        decision = json.loads(Path(output.artifacts[DECISION].path).read_text(encoding="utf-8"))
        if spec.id in decision["skipped"]:
            how = "the deadline" if decision["timed_out"] else repr(decision["respondent"])
            return f"skipped: {gate!r} was answered {decision['option']!r} by {how}"
    return None


def skipped_state(task_id: str, reason: str) -> State:
    """The final state of a skipped task: completed, named ``Skipped``."""
    return Completed(name=SKIPPED, message=reason, data=Skipped(task_id, reason))
