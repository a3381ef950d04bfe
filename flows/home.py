"""Where runs keep their files: ``PLAN2FLOW_HOME`` (default ``~/.plan2flow``), never the
source tree."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "PLAN2FLOW_HOME"


def plan2flow_home() -> Path:
    """The plan2flow home directory (created on first use)."""
    configured = os.environ.get(HOME_ENV)
    home = Path(configured).expanduser() if configured else Path.home() / ".plan2flow"
    home.mkdir(parents=True, exist_ok=True)
    return home.resolve()
