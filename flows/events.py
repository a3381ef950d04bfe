"""Task lifecycle events: ``plan2flow.task.started|retrying|completed|failed|not_run``.

Each is emitted as a Prefect event (visible in the UI's event feed and usable in automations),
correlated by the flow-run id, and logged as one JSON line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from prefect.events import emit_event

LOGGER = logging.getLogger("plan2flow.events")

EVENT_PREFIX = "plan2flow.task."


def publish(
    what: str,
    *,
    plan: str,
    task_id: str,
    graph_hash: str,
    flow_run_id: str,
    logger: Any = None,
    **payload: Any,
) -> None:
    event = EVENT_PREFIX + what
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"plan2flow.task.{plan}.{task_id}",
            "prefect.resource.name": task_id,
            "plan2flow.plan": plan,
            "plan2flow.task-id": task_id,
            "plan2flow.graph-hash": graph_hash,
            "plan2flow.correlation-id": flow_run_id,
        },
        related=[
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
        ],
        payload=payload,
    )
    target = logger or LOGGER
    if not target.isEnabledFor(logging.INFO):
        return
    line = {
        "event": event,
        "plan": plan,
        "task": task_id,
        "graph_hash": graph_hash,
        "flow_run_id": flow_run_id,
        **payload,
    }
    target.info(json.dumps(line, sort_keys=True, default=str))
