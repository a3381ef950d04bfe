"""Alembic migrations of the metadata database, run in-process (no ``alembic.ini``).

On PostgreSQL, run them as the migration role (``PLAN2FLOW_DATABASE_ADMIN_URL``), which owns the
tables; the application role (the user of ``PLAN2FLOW_DATABASE_URL``) is granted what it may do
by the revision that turns row-level security on. The application role may not read
``alembic_version``: every migration run also writes the revision into that table's comment,
which the catalog shows to any role, and :func:`require_head` reads it there. Reading the
revision needs no Alembic (:mod:`.revision`); this module imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ..errors import MemoryStoreError
from ..settings import MemorySettings
from .engine import create_database_engine, engine_url, redact, unavailable
from .revision import current, require_head, schema_revision

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Revision:
    """One migration: its id, the one before it, and what it does."""

    id: str
    parent: str | None
    message: str
    is_head: bool


def _config(connection: Connection | None = None, app_role: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["app_role"] = app_role
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision."""
    found = _scripts().get_current_head()
    assert found is not None
    return found


def history() -> list[Revision]:
    """Every revision, oldest first."""
    scripts = _scripts()
    heads = set(scripts.get_heads())
    revisions = [
        Revision(
            id=script.revision,
            parent=script.down_revision if isinstance(script.down_revision, str) else None,
            message=(script.doc or "").strip(),
            is_head=script.revision in heads,
        )
        for script in scripts.walk_revisions()
    ]
    return revisions[::-1]


@contextlib.contextmanager
def _migrating(url: str) -> Iterator[Connection]:
    """One transaction for a whole migration run; errors as project memory's own."""
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(parsed, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            yield connection
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        raise unavailable(parsed, error) from None
    except sa.exc.DBAPIError as error:
        reason = " ".join(str(error.orig).split())
        raise MemoryStoreError(f"migrating {redact(parsed)} failed: {reason}") from None
    except CommandError as error:
        raise MemoryStoreError(f"migrating {redact(parsed)}: {error}") from None
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head", *, app_role: str | None = None) -> None:
    """Migrate the database at `url` forward to `revision`; on PostgreSQL, grant `app_role`
    (when it is not the migrating user) what the application may do."""
    with _migrating(url) as connection:
        command.upgrade(_config(connection, app_role), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision` (``base``: no tables at all)."""
    with _migrating(url) as connection:
        command.downgrade(_config(connection), revision)


def application_role(settings: MemorySettings) -> str | None:
    """The role the application connects as, when it is not the migration role (PostgreSQL):
    the one the migrations grant privileges to."""
    if settings.is_sqlite:
        return None
    app_user = engine_url(settings.database_url).username
    admin_user = engine_url(settings.admin_url).username
    return app_user if app_user and app_user != admin_user else None


__all__ = [
    "Revision",
    "application_role",
    "current",
    "downgrade",
    "head",
    "history",
    "require_head",
    "schema_revision",
    "upgrade",
]
