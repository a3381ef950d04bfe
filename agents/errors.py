"""The agents' errors: one root, so that callers tell an agent's refusal from a bug.

::

    AgentError
    └── Refused   the request names something the agent will not write
"""

from __future__ import annotations


class AgentError(Exception):
    """The root of the agents' errors; ``exit_status`` is what the command line exits with."""

    exit_status = 1


class Refused(AgentError):
    """The request names something the agent will not write: the task fails, nothing is written."""
