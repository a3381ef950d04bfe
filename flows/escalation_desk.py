"""The escalation chain's human tier on Prefect: the flow run pauses with a typed form (accept,
edit, reject, retry; the code to keep on `edit`, a comment), answered like an approval from the
Prefect UI's Resume form, ``plan2flow approvals respond`` or Prefect's REST API.

The chain runs inside a task, and Prefect suspends flows, not tasks: the human tier always
pauses in-process (``mode: suspend`` is taken as ``pause``, with a warning). The answer is data:
the server checks it against the form's JSON schema, it is validated again here, and its code
reaches the events and the journal only as a hash and a length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any
from uuid import UUID

from prefect.input.actions import create_flow_run_input, read_flow_run_input

from plan2flow.escalation.human import DECISIONS, HumanAnswer, HumanQuestion, describe

from .approval_events import announce, journal
from .approval_form import answer_model, check_answer, form_data
from .approvals import POLL_SECONDS
from .errors import TaskFailure
from .pausing import pause_for_input
from .workspace import RunPlace

LOGGER = logging.getLogger("plan2flow.runtime")
KEY_PREFIX = "escalation-"
"""Pause keys of the human tier start with it; ``plan2flow approvals`` finds them by it."""
FORM: dict[str, dict[str, Any]] = {
    "code": {
        "type": "string",
        "required": False,
        "default": None,
        "description": "For `edit`: the whole module to keep (it must parse; it is scored).",
    },
    "comment": {
        "type": "string",
        "required": False,
        "default": None,
        "description": "Why (kept in the escalation's journal).",
    },
}


def pause_key(task_id: str, round_: int) -> str:
    """The pause key of one question: lowercase letters, digits and dashes, one per answer.

    >>> pause_key("greeter.generate_code", 1)
    'escalation-greeter-generate-code-5d77ec2a7fc6-1'
    """
    readable = "".join(c if c.isalnum() and c.isascii() else "-" for c in task_id.lower())[:40]
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:12]
    return f"{KEY_PREFIX}{readable.strip('-')}-{digest}-{round_}"


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """An answer's form data as events and the journal keep it: the code as a hash."""
    code = data.get("code")
    kept: dict[str, Any] = {"comment": data.get("comment")}
    if code:
        kept["code_sha256"] = hashlib.sha256(code.encode()).hexdigest()
        kept["code_chars"] = len(code)
    return kept


def _announce(place: RunPlace, what: str, question: HumanQuestion, **data: Any) -> None:
    """An approval's events and journal entry; the journal keeps one entry per run, task and
    action, so a later question's is filed under ``<task>#<n>``."""
    announce(place, what, question.task_id, **data)
    if question.round > 1:
        journal(place, f"approval.{what}", f"{question.task_id}#{question.round}", data)


class PrefectDesk:
    """Asks a person by pausing the flow run of ``place``: one of the question's respondents,
    or anyone when it names none (the server enforces the list, and it is checked again)."""

    def __init__(self, place: RunPlace) -> None:
        self.place = place

    def ask(self, question: HumanQuestion) -> HumanAnswer | None:
        place, task_id = self.place, question.task_id
        respondents = list(question.respondents)
        if question.mode == "suspend":
            LOGGER.warning(
                "plan2flow: the human tier of %s pauses: Prefect cannot suspend a flow from a task",
                task_id,
            )
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=question.timeout_s)
        key = pause_key(task_id, question.round)
        params = {"options": list(DECISIONS), "respondents": respondents, "form": FORM}
        model = answer_model(task_id, params, describe(question, place.flow_run_id))
        self._save_request(key, question, deadline)
        _announce(
            place,
            "requested",
            question,
            options=list(DECISIONS),
            respondents=respondents,
            deadline=deadline.isoformat(),
            mode="pause",
        )
        answer = pause_for_input(
            model, key=key, timeout=question.timeout_s, poll_seconds=POLL_SECONDS
        )
        if answer is None:
            _announce(place, "timed_out", question, on_timeout="fail", skipped=[])
            return None
        checked = check_answer(model, answer.model_dump(by_alias=True))
        option, respondent = str(checked.option), str(checked.respondent)  # type: ignore[attr-defined]
        if respondents and respondent not in respondents:
            raise TaskFailure(f"escalation of {task_id!r}: {respondent!r} may not answer it")
        data = form_data(checked)
        _announce(
            place,
            "given",
            question,
            option=option,
            respondent=respondent,
            data=_summary(data),
            skipped=[],
        )
        return HumanAnswer(
            decision=option,  # type: ignore[arg-type]  # a Literal of DECISIONS
            respondent=respondent,
            code=data.get("code"),
            comment=data.get("comment"),
        )

    def _save_request(self, key: str, question: HumanQuestion, deadline: dt.datetime) -> None:
        """What the question asks, beside its form, for ``plan2flow approvals``."""
        run_id = UUID(self.place.flow_run_id)
        name = f"paused-{key}-request"
        if read_flow_run_input(name, flow_run_id=run_id) is not None:
            return
        request = {
            "kind": "escalation",
            "plan": self.place.plan,
            "task": question.task_id,
            "graph_hash": self.place.graph_hash,
            "options": list(DECISIONS),
            "respondents": list(question.respondents),
            "form": FORM,
            "on_timeout": "fail",
            "deadline": deadline.isoformat(),
            "mode": "pause",
            "round": question.round,
        }
        create_flow_run_input(key=name, value=request, flow_run_id=run_id)
