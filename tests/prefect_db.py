"""A migrated Prefect database, made once per test session and copied into fresh Prefect homes.

A Prefect server on a new SQLite file first runs every migration: about 7 s of CPU, more than
the rest of its start. The suite starts a dozen such servers (the session's API in each
worker, `plan2flow up`, the temporary server of `plan2flow run`); each starts instead from a
copy of one database migrated at the start of the session. The tests of a first start on an
empty home (tests/test_server.py, `make demo`) still migrate for themselves.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Run by this interpreter in a process of its own: the database interface of the process
# that asks is left as it was.
_MIGRATE = """\
import asyncio
from prefect.server.database import provide_database_interface
asyncio.run(provide_database_interface().create_db())
"""
DATABASE_FILE = "prefect.db"


def migrated_template(directory: Path) -> Path:
    """The migrated database in `directory`, made by the first process of the session to ask
    (xdist workers share `directory`; the others wait for it under a lock)."""
    template = directory / "prefect-migrated.db"
    with (directory / "prefect-migrated.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = directory / "prefect-migrating.db"
            partial.unlink(missing_ok=True)
            env = {
                **os.environ,
                "PREFECT_HOME": str(directory / "prefect-migrating-home"),
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{partial}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
            env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
            subprocess.run([sys.executable, "-c", _MIGRATE], env=env, check=True, timeout=300)
            os.replace(partial, template)
    return template


def seed(prefect_home: Path, template: Path) -> Path:
    """`prefect_home` holding a copy of the migrated database, where a server looks for it."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, prefect_home / DATABASE_FILE)
    return prefect_home
