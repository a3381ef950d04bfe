"""How ``plan2flow run`` watches and steers a run in its own process: forced re-execution, a
progress observer, the flow run id once it exists, and the cancel flag. Tasks never depend on
these: what they need travels in their arguments."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Callable, Iterator

from .summary import TaskRecord

Observer = Callable[[str, TaskRecord], None]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Set by ``plan2flow run``: force re-execution, watch progress."""

    no_cache: bool = False
    observer: Observer | None = None
    on_start: Callable[[str], None] | None = None
    """Called with the flow run id once the run exists (to cancel it on Ctrl-C)."""
    cancelled: threading.Event | None = None
    """Set by whoever cancels the run before it publishes ``flow.cancelled``: the run's threads
    in this process publish nothing more (a task killed by the cancel is not a failure)."""


OPTIONS: contextvars.ContextVar[RunOptions | None] = contextvars.ContextVar(
    "plan2flow_run_options", default=None
)


@contextlib.contextmanager
def options(run_options: RunOptions) -> Iterator[None]:
    token = OPTIONS.set(run_options)
    try:
        yield
    finally:
        OPTIONS.reset(token)
