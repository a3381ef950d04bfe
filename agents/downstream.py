"""The checks of the steps after a code generator (`validate`, `test`), run on a candidate's
files before it is kept, so that their failures feed the escalation chain instead of failing
those steps later.

They are the Validator's and the Tester's own code, with the params of the plan's validate and
test tasks (``AgentRequest.checks``); a step whose params refer to run values (``${{ ... }}``)
or name a Python this worker lacks is left to its task. A candidate that is not kept yet is
model-written code: pytest runs it with an environment of its own (``PATH``, a ``HOME`` in its
directory), never the worker's variables and API keys.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .confine import refusing
from .contract import AgentRequest, AgentResult, Outcome
from .errors import Refused
from .tester import TesterAgent, interpreter
from .validator import ValidatorAgent

FEEDBACK_LINES = 40
"""How many lines of a failing check are kept (what a model reads, what a record shows)."""

Check = Callable[[Path], str | None]


def _candidate_environment(directory: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)}


@refusing
def _tested(agent: TesterAgent, request: AgentRequest) -> AgentResult:
    return agent.run_tests(request, _candidate_environment(Path(request.inputs["code"])))


def _run(
    step: Mapping[str, Any], code: Path, dependencies: Mapping[str, str], task_id: str
) -> AgentResult:
    kind = str(step.get("type"))
    params = dict(step.get("params") or {})
    with tempfile.TemporaryDirectory(prefix=f"p2f-{kind}-") as workspace:
        request = AgentRequest(
            task_id=f"{task_id}:{kind}",
            task_type=kind,
            params=params,
            inputs={"code": str(code), **dependencies},
            workspace=workspace,
        )
        if kind == "validate":
            return ValidatorAgent().execute(request)
        return _tested(TesterAgent(), request)


def _failure(kind: str, result: AgentResult) -> str:
    lines = [*result.findings, *result.log_excerpt.splitlines()]
    unique = list(dict.fromkeys(line for line in lines if line.strip()))
    shown = unique[:FEEDBACK_LINES]
    more = len(unique) - len(shown)
    return f"{kind} failed:\n" + "\n".join(shown) + (f"\n... and {more} more" if more else "")


def _runnable_here(step: Mapping[str, Any]) -> bool:
    """A validate or test step whose params are known before the run (no ``${{ ... }}``) and,
    for a test, whose Python this worker has: what fails here for want of a value or an
    interpreter says nothing about the code."""
    if step.get("type") not in ("validate", "test"):
        return False
    params = step.get("params") or {}
    if "${{" in json.dumps(params, default=str):
        return False
    if step["type"] == "test":
        try:
            return interpreter(params.get("python")) is not None
        except Refused:
            return False
    return True


def downstream_check(
    steps: Sequence[Mapping[str, Any]], dependencies: Mapping[str, str], task_id: str
) -> Check | None:
    """A check that runs every step of ``steps`` on a directory of code and returns the first
    failure's output (None when all pass); None when there are no steps."""
    known = [step for step in steps if _runnable_here(step)]
    if not known:
        return None

    def check(code: Path) -> str | None:
        for step in known:
            result = _run(step, code, dependencies, task_id)
            if result.outcome is not Outcome.SUCCEEDED:
                return _failure(str(step["type"]), result)
        return None

    return check
