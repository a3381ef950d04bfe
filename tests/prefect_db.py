"""A migrated Prefect database, made once per test session and copied into fresh Prefect homes.

A Prefect server on a new SQLite file first runs every migration (about 7 s of CPU, more than
the rest of its start), then registers Prefect's block types. The suite starts a dozen such
servers (the session's API, `plan2flow up`, the temporary server of `plan2flow
run`); each starts instead from a copy of one database migrated, its blocks registered, at the
start of the session. A first start on an empty home still migrates for itself (`make demo`,
and every `plan2flow run` or `plan2flow up` of a new user).
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
import prefect.plugins
import prefect.server.api.server  # the block classes a server's registry holds
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration

async def main():
    db = provide_database_interface()
    await db.create_db()
    prefect.plugins.load_prefect_collections()
    async with await db.session() as session:
        await run_block_auto_registration(session=session)

asyncio.run(main())
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


# The template holds Prefect's block types already: a server started in a seeded home does
# not register them again (SEEDED_SERVER_SETTINGS, also the session API's).
SEEDED_SERVER_SETTINGS = {
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}


def seed(prefect_home: Path, template: Path) -> Path:
    """`prefect_home` holding a copy of the migrated database, where a server looks for it,
    and a profile with SEEDED_SERVER_SETTINGS, which the processes of that home read."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, prefect_home / DATABASE_FILE)
    settings = "".join(f'{name} = "{value}"\n' for name, value in SEEDED_SERVER_SETTINGS.items())
    profiles = f'active = "seeded"\n\n[profiles.seeded]\n{settings}'
    (prefect_home / "profiles.toml").write_text(profiles, encoding="utf-8")
    return prefect_home
