"""Where plan2flow keeps its state: ``PLAN2FLOW_HOME`` (default ``~/.plan2flow``), never the
source tree.

The lowest part: runs, agents, the event spool and the server all find their files here, and it
imports nothing of plan2flow."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "PLAN2FLOW_HOME"


def plan2flow_home(environ: Mapping[str, str] | None = None, *, create: bool = True) -> Path:
    """The plan2flow home directory, from `environ` (default: the process environment).

    >>> str(plan2flow_home({"PLAN2FLOW_HOME": "/srv/p2f"}, create=False))
    '/srv/p2f'
    """
    configured = (os.environ if environ is None else environ).get(HOME_ENV)
    home = Path(configured).expanduser() if configured else Path.home() / ".plan2flow"
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home.resolve()
