"""The runtime's errors: one root, each carrying the exit status of the command that met it.

::

    FlowsError
    ├── TaskFailure               a task did its work and the work failed (exit status 1)
    │   ├── AgentNotRegisteredError
    │   └── CommandStopped        its command was stopped because the run is stopping
    └── StaleModuleError          a flow module and its TaskGraph do not belong together (2)
"""

from __future__ import annotations


class FlowsError(Exception):
    """The root of the runtime's errors; ``exit_status`` is what the command line exits with."""

    exit_status = 1


class TaskFailure(FlowsError):
    """A task did its work and the work failed (non-zero exit, exception, missing output)."""


class AgentNotRegisteredError(TaskFailure):
    """No agent serves this task type on this installation."""


class CommandStopped(TaskFailure):
    """The task's command was terminated, or not started, because its run is stopping."""


class StaleModuleError(FlowsError):
    """The flow module and the TaskGraph beside it do not belong together."""

    exit_status = 2
