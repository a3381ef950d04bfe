"""The schema revision a database is at, read without Alembic.

Every command that opens project memory checks the revision (the audit journal of
``plan2flow compile`` does); importing Alembic to read one row cost about 0.9 s of CPU per
command. Alembic is imported by :mod:`.migrate` only when a migration runs. ``HEAD`` is the
newest revision, written here and checked against Alembic's own by the migration tests.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ..errors import SchemaOutOfDate
from .engine import Database, create_database_engine, engine_url, unavailable

HEAD = "0005_tenant_hosts"
"""The newest revision in migrations/versions (tests/test_memory_migrations.py checks it)."""
VERSION_TABLE = "alembic_version"


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
    elif not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    version = sa.table(VERSION_TABLE, sa.column("version_num"))
    heads = connection.execute(sa.select(version.c.version_num)).scalars()
    return ",".join(sorted(heads)) or None


def require_head(database: Database) -> None:
    """:class:`SchemaOutOfDate` unless `database` is at the newest revision."""
    with database.connect() as connection:
        found = schema_revision(connection)
    if found != HEAD:
        state = f"at revision {found}" if found else "not migrated"
        raise SchemaOutOfDate(
            f"the metadata database {database.url} is {state}, not at {HEAD}: run "
            "`plan2flow db upgrade` as the migration role (PLAN2FLOW_DATABASE_ADMIN_URL)"
        )


__all__ = ["HEAD", "VERSION_TABLE", "current", "require_head", "schema_revision"]
