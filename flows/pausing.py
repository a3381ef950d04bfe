"""Pause the running flow until a person answers, with the deadline kept by the task.

Prefect's ``pause_flow_run(timeout=...)`` hands the deadline to the server as well, whose
pause-expiration service fails a run whose pause has expired. The task that waits polls, so on
a busy machine the server often gets there first: a run whose plan says what a timeout means
(``on_timeout: ship``) showed a Failed state ("The flow was paused and never resumed"), firing
automations on failure, until the task set it running again. Here the Paused state outlives the
deadline by :data:`PAUSE_GRACE_SECONDS` and the task itself ends the pause at the deadline, so a
timeout is never a failure unless the plan says so.
"""

from __future__ import annotations

import math
import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.exceptions import Abort
from prefect.input import keyset_from_paused_state
from prefect.input.actions import read_flow_run_input
from prefect.input.run_input import run_input_subclass_from_type
from prefect.states import Paused, Running
from prefect.utilities.engine import propose_state_sync

PAUSE_GRACE_SECONDS = 300
"""How long after the task's deadline the server would fail a pause: only a task that died
waiting (its process killed) leaves a pause that long, and the server then fails the run."""


def pause_for_input(model: type[Any], *, key: str, timeout: float, poll_seconds: float) -> Any:
    """Pause the current flow run for ``model``'s form; the answer, or None when nobody gave
    one within ``timeout`` seconds (the run is then running again). A pause whose ``key`` was
    answered before (a retried task) returns that answer at once."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("only a flow run can be paused for an answer")
    run_id = context.flow_run.id
    proposed: State[Any] = Paused(
        timeout_seconds=math.ceil(timeout) + PAUSE_GRACE_SECONDS, reschedule=False, pause_key=key
    )
    form: Any = run_input_subclass_from_type(model)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = {str(name): key for name, key in keyset.items()}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        try:
            state = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
        except Abort as error:
            raise RuntimeError(f"the flow run cannot be paused: {error}") from error
        if state.is_running():  # the server refused the pause: this key was answered already
            return form.load(keyset, flow_run_id=run_id)
        if not state.is_paused():
            raise RuntimeError(f"the flow run cannot be paused: the server answered {state}")
        form.save(keyset, flow_run_id=run_id)
        while not _running(client, run_id):
            left = deadline - time.monotonic()
            if left <= 0:
                client.set_flow_run_state(run_id, Running(), force=True)
                # An answer that came between the last look and now still counts.
                if read_flow_run_input(keyset["response"], flow_run_id=run_id) is None:
                    return None
                break
            time.sleep(min(poll_seconds, left))
        return form.load(keyset, flow_run_id=run_id)


def _running(client: SyncPrefectClient, run_id: UUID) -> bool:
    state = client.read_flow_run(run_id).state
    return state is not None and state.is_running()
