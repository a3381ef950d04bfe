"""The audit journal's entries for what the command line does itself: compile, deploy, agent
registration. Written after the action succeeded, in the tenant of the environment.

A journal that cannot be written does not undo the action (its outputs are already in place):
the command says so on stderr, and the action stays visible in its own outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console

from .app import say


def journal(err: Console, action: str, subject: str, detail: Mapping[str, Any]) -> bool:
    """Append one entry for `action` on `subject`; ``False`` (and a warning) when it cannot."""
    from plan2flow.memory import audit
    from plan2flow.memory.db.engine import configured_database
    from plan2flow.memory.errors import MemoryStoreError
    from plan2flow.memory.settings import memory_settings

    try:
        settings = memory_settings()
        with configured_database(settings) as database:
            audit.record(database, settings.tenant, action, subject, detail)
    except (MemoryStoreError, OSError) as error:
        say(err, f"plan2flow: warning: the audit journal was not written: {error}")
        return False
    return True
