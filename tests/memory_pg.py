"""PostgreSQL for project memory's tests: the machine's server on 127.0.0.1:5432, a database and
two roles of the test session's own, set up by deploy/postgres/roles.sql as `postgres` and
dropped at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from support import need_service

HOST, PORT = "127.0.0.1", 5432
SUPERUSER = os.environ.get("PLAN2FLOW_TEST_POSTGRES_USER", "postgres")
ROLES_SQL = Path(__file__).parents[1] / "deploy" / "postgres" / "roles.sql"


def available() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return True
    except OSError:
        return False


def superuser_connection(database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=HOST, port=PORT, user=SUPERUSER, dbname=database, autocommit=True)


@dataclass
class MemoryPostgres:
    """A database owned by a migration role, and an application role (roles.sql)."""

    tag: str
    migrator: str = field(init=False)
    app: str = field(init=False)
    databases: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.migrator = f"p2f_{self.tag}_migrator"
        self.app = f"p2f_{self.tag}_app"

    @property
    def database(self) -> str:
        return self.databases[0]

    def url(self, role: str, database: str | None = None) -> str:
        return f"postgresql://{role}@{HOST}:{PORT}/{database or self.database}"

    def admin_url(self, database: str | None = None) -> str:
        return self.url(self.migrator, database)

    def app_url(self, database: str | None = None) -> str:
        return self.url(self.app, database)

    def dsn(self, role: str, database: str | None = None) -> str:
        return f"host={HOST} port={PORT} user={role} dbname={database or self.database}"

    def environ(self, home: Path, database: str | None = None) -> dict[str, str]:
        """The environment of an application of this database (and its migration role)."""
        return {
            "PLAN2FLOW_HOME": str(home),
            "PLAN2FLOW_DATABASE_URL": self.app_url(database),
            "PLAN2FLOW_DATABASE_ADMIN_URL": self.admin_url(database),
        }

    def create_database(self, suffix: str = "") -> str:
        """Run roles.sql for one more database (the roles exist already: they are kept)."""
        name = f"p2f_{self.tag}{suffix}"
        subprocess.run(
            [
                shutil.which("psql") or "psql",
                *("-h", HOST, "-p", str(PORT), "-U", SUPERUSER, "-d", "postgres", "-q"),
                *("-v", "ON_ERROR_STOP=1", "-f", str(ROLES_SQL)),
                *("-v", f"database={name}", "-v", f"migrator={self.migrator}"),
                *("-v", f"app={self.app}"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with superuser_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def drop(self) -> None:
        for name in list(self.databases):
            self.drop_database(name)
        with superuser_connection() as connection:
            for role in (self.app, self.migrator):
                connection.execute(f'DROP ROLE IF EXISTS "{role}"')


@contextlib.contextmanager
def fresh_postgres(migrate: bool = True) -> Iterator[MemoryPostgres]:
    """A new database and new roles, at the newest revision (granted to the app role) unless
    told otherwise; all dropped at the end."""
    need_service(available(), f"PostgreSQL is not running on {HOST}:{PORT}")
    need_service(shutil.which("psql") is not None, "no psql to run deploy/postgres/roles.sql")
    pg = MemoryPostgres(tag=uuid.uuid4().hex[:10])
    try:
        pg.create_database()
        if migrate:
            from plan2flow.memory.db import migrate as migrations

            migrations.upgrade(pg.admin_url(), app_role=pg.app)
        yield pg
    finally:
        pg.drop()


def create_tenants(pg: MemoryPostgres, *names: str, database: str | None = None) -> None:
    """Tenants created as the migration role."""
    with psycopg.connect(pg.dsn(pg.migrator, database), autocommit=True) as connection:
        for name in names:
            connection.execute(
                "INSERT INTO tenants (id, name, created) VALUES (%s, %s, now())",
                (uuid.uuid4(), name),
            )


def unique_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
