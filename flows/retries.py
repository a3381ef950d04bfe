"""What a task's retry says about the attempt before it: the failure's message, and how long
the task waited since. Prefect's retry states carry neither, so each failed attempt is noted
here, in the process running the task (Prefect retries a task where it ran it), until the next
attempt begins or the task reaches its final state."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from .errors import TaskFailure


@dataclasses.dataclass(frozen=True)
class Failure:
    message: str
    at: float
    """``time.monotonic()`` when the attempt failed."""

    def waited(self) -> float:
        return max(time.monotonic() - self.at, 0.0)


_FAILURES: dict[Any, Failure] = {}
_LOCK = threading.Lock()


def failure_message(error: BaseException) -> str:
    """As ``task.failed`` says it: a `TaskFailure`'s own text, otherwise the exception's type
    and text."""
    if isinstance(error, TaskFailure):
        return str(error)
    return f"{type(error).__name__}: {error}".rstrip(": ")


def note_failure(task_run_id: Any, error: BaseException) -> None:
    with _LOCK:
        _FAILURES[task_run_id] = Failure(failure_message(error), time.monotonic())


def previous_failure(task_run_id: Any) -> Failure | None:
    """The failure of the attempt before this one (forgotten once read)."""
    with _LOCK:
        return _FAILURES.pop(task_run_id, None)


def forget(task_run_id: Any) -> None:
    """The task reached its final state: no attempt follows."""
    with _LOCK:
        _FAILURES.pop(task_run_id, None)
