"""What an approval tells the world: ``plan2flow.approval.requested|given|timed_out`` on the
event bus (typed, registered here) and as Prefect events (so automations can notify people),
and an entry in the audit journal (who answered what, when, for which run and task)."""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

from plan2flow.events import EventData, register_event_type

from .publishing import emit, mirror_to_prefect
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")


class ApprovalRequested(EventData):
    options: list[str]
    respondents: list[str] = []
    deadline: str
    """When the deadline answers (ISO 8601, UTC)."""
    mode: str = "pause"


class ApprovalGiven(EventData):
    option: str
    respondent: str
    data: dict[str, Any] = {}
    skipped: list[str] = []


class ApprovalTimedOut(EventData):
    on_timeout: str
    """The option the deadline chose, or ``fail``."""
    skipped: list[str] = []


class ApprovalNotifyFailed(EventData):
    """The request could not be posted to the approval's ``notify.webhook``."""

    host: str
    """The webhook's host (its path and query may hold a secret)."""
    attempts: int
    status: int | None = None
    error: str = ""


class TaskSkipped(EventData):
    message: str = ""
    """Why: the answer that skipped it, or the upstream task that was skipped."""


APPROVAL_EVENTS: dict[str, type[EventData]] = {
    "requested": ApprovalRequested,
    "given": ApprovalGiven,
    "timed_out": ApprovalTimedOut,
    "notify_failed": ApprovalNotifyFailed,
}
for _name, _model in APPROVAL_EVENTS.items():
    register_event_type(f"plan2flow.approval.{_name}", _model)
register_event_type("plan2flow.task.skipped", TaskSkipped)


def announce(place: RunPlace, what: str, task_id: str, **data: Any) -> None:
    """Publish ``plan2flow.approval.<what>`` on the bus, mirror it to Prefect, journal it."""
    name = f"plan2flow.approval.{what}"
    emit(place, lambda run: run.event(name, taskid=task_id, attempt=1, **data))
    try:
        emit_event(
            event=name,
            resource={
                "prefect.resource.id": f"plan2flow.approval.{place.plan}.{task_id}",
                "prefect.resource.name": task_id,
                "plan2flow.plan": place.plan,
                "plan2flow.task-id": task_id,
                "plan2flow.graph-hash": place.graph_hash,
                "plan2flow.correlation-id": place.flow_run_id,
            },
            related=[
                {
                    "prefect.resource.id": f"prefect.flow-run.{place.flow_run_id}",
                    "prefect.resource.role": "flow-run",
                }
            ],
            payload=data,
        )
    except Exception:
        LOGGER.exception("plan2flow: Prefect event %s of %s was not emitted", name, task_id)
    journal(place, f"approval.{what}", task_id, data)


def journal(place: RunPlace, action: str, task_id: str, detail: dict[str, Any]) -> bool:
    """An entry in the run's tenant's audit journal (the intervention journal), by the
    respondent when there is one; ``False`` when it cannot be written: an answer is never lost
    for it, the decision artifact and the events hold it."""
    from plan2flow.memory import audit

    if action not in audit.ACTIONS:
        return False
    from plan2flow.memory.db.engine import configured_database
    from plan2flow.memory.settings import memory_settings

    subject = f"{place.plan}/{task_id}"
    who = detail.get("respondent") or None
    try:
        settings = memory_settings()
        with configured_database(settings) as database:
            audit.record(
                database,
                place.tenant,
                action,
                subject,
                {**detail, "flow_run_id": place.flow_run_id, "graph_hash": place.graph_hash},
                key=f"{action}:{place.flow_run_id}:{task_id}",
                who=who,
            )
    except Exception:
        LOGGER.exception("plan2flow: %s of %s was not journaled", action, subject)
        return False
    return True


def skipped(place: RunPlace, task_id: str, message: str, logger: Any = None) -> None:
    """A task skipped by an answer: ``plan2flow.task.skipped`` on the bus and Prefect's."""
    emit(place, lambda run: run.task("skipped", task_id, message=message))
    mirror_to_prefect(place, "skipped", task_id, logger, message=message)
