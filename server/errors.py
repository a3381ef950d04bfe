"""The operations' errors: one root, each carrying the exit status of the command that met it.

::

    OperationError
    ├── ServerError    the local server cannot be started, found or stopped
    ├── DeployError    a plan cannot be deployed
    ├── RemoteError    the server is unreachable, or refused what was asked
    ├── LaunchError    a plan cannot be run
    └── Interrupted    a run was stopped by a signal (exit status 128 + the signal)
"""

from __future__ import annotations


class OperationError(Exception):
    """The root of the operations' errors; ``exit_status`` is what the command line exits with."""

    exit_status = 2
