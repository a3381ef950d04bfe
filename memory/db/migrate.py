"""Alembic migrations of the metadata database, run in-process (no ``alembic.ini``).

On PostgreSQL, run them as the migration role (``PLAN2FLOW_DATABASE_ADMIN_URL``), which owns the
tables; the application role (the user of ``PLAN2FLOW_DATABASE_URL``) is granted what it may do
by the revision that turns row-level security on. The application role may not read
``alembic_version``: every migration run also writes the revision into that table's comment,
which the catalog shows to any role, and :func:`require_head` reads it there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ..errors import MemoryStoreError, SchemaOutOfDate
from ..settings import MemorySettings
from .engine import Database, create_database_engine, engine_url, redact, unavailable

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


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


def current(url: str) -> str | None:
    """The revision the database at `url` is at (``None``: never migrated)."""
    parsed = engine_url(url)
    engine = create_database_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return schema_revision(connection)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        raise unavailable(parsed, error) from None
    finally:
        engine.dispose()


def schema_revision(connection: Connection) -> str | None:
    """The revision of the database of `connection`; on PostgreSQL, from the version table's
    comment when the role may not read the table (the application role)."""
    if connection.dialect.name == "postgresql":
        readable = connection.execute(
            sa.text(
                "SELECT CASE WHEN to_regclass(:t) IS NULL THEN false "
                "ELSE has_table_privilege(to_regclass(:t), 'SELECT') END, "
                "obj_description(to_regclass(:t), 'pg_class')"
            ),
            {"t": VERSION_TABLE},
        ).one()
        if not readable[0]:
            return readable[1] or None
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def require_head(database: Database) -> None:
    """:class:`SchemaOutOfDate` unless `database` is at the newest revision."""
    with database.connect() as connection:
        found = schema_revision(connection)
    newest = head()
    if found != newest:
        state = f"at revision {found}" if found else "not migrated"
        raise SchemaOutOfDate(
            f"the metadata database {database.url} is {state}, not at {newest}: run "
            "`plan2flow db upgrade` as the migration role (PLAN2FLOW_DATABASE_ADMIN_URL)"
        )


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
