"""Where project memory keeps its data, read once from the environment.

=============================  ===============================================================
``PLAN2FLOW_DATABASE_URL``     the application's database (default: SQLite in the home)
``PLAN2FLOW_DATABASE_ADMIN_URL``  the migration role's database URL, for ``db upgrade`` and
                               ``tenants create`` on PostgreSQL (default: the database URL)
``PLAN2FLOW_ARTIFACTS_URL``    where blobs go: a directory or ``s3://bucket/prefix``
                               (default: ``$PLAN2FLOW_HOME/blobs``)
``PLAN2FLOW_TENANT``           the tenant of this process (default ``default``)
``PLAN2FLOW_KEYS_FILE``        master keys, one ``<key id>=<base64 of 32 bytes>`` per line
``PLAN2FLOW_MASTER_KEY``       one master key, ``<key id>=<base64>``, instead of a file
=============================  ===============================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from plan2flow.home import plan2flow_home

from .errors import TenantError

DATABASE_URL_ENV = "PLAN2FLOW_DATABASE_URL"
DATABASE_ADMIN_URL_ENV = "PLAN2FLOW_DATABASE_ADMIN_URL"
ARTIFACTS_URL_ENV = "PLAN2FLOW_ARTIFACTS_URL"
TENANT_ENV = "PLAN2FLOW_TENANT"
KEYS_FILE_ENV = "PLAN2FLOW_KEYS_FILE"
MASTER_KEY_ENV = "PLAN2FLOW_MASTER_KEY"
DEFAULT_TENANT = "default"

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_tenant(tenant: str) -> str:
    """``tenant`` when it is a DNS label (the same rule as event subjects), else TenantError.

    >>> check_tenant("acme-1")
    'acme-1'
    """
    if not isinstance(tenant, str) or not _LABEL.fullmatch(tenant):
        raise TenantError(
            f"tenant {tenant!r} is not a DNS label (lowercase letters, digits and '-', "
            "1 to 63 characters, starting and ending with a letter or digit)"
        )
    return tenant


@dataclass(frozen=True)
class MemorySettings:
    """The resolved locations and identity; build with :func:`memory_settings`."""

    home: Path
    database_url: str
    admin_url: str
    artifacts_url: str
    tenant: str
    keys_file: Path | None
    master_key: str | None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def memory_settings(environ: Mapping[str, str] | None = None) -> MemorySettings:
    """The settings from `environ` (default: the process environment).

    >>> s = memory_settings({"PLAN2FLOW_HOME": "/srv/p2f"})
    >>> s.database_url, s.artifacts_url, s.tenant
    ('sqlite:////srv/p2f/plan2flow.db', '/srv/p2f/blobs', 'default')
    """
    env = os.environ if environ is None else environ
    home = plan2flow_home(env, create=environ is None)
    database_url = env.get(DATABASE_URL_ENV) or f"sqlite:///{home / 'plan2flow.db'}"
    keys_file = env.get(KEYS_FILE_ENV)
    return MemorySettings(
        home=home,
        database_url=database_url,
        admin_url=env.get(DATABASE_ADMIN_URL_ENV) or database_url,
        artifacts_url=env.get(ARTIFACTS_URL_ENV) or str(home / "blobs"),
        tenant=check_tenant(env.get(TENANT_ENV) or DEFAULT_TENANT),
        keys_file=Path(keys_file).expanduser() if keys_file else None,
        master_key=env.get(MASTER_KEY_ENV) or None,
    )
