"""Tenants: DNS labels that every row of project memory belongs to.

Created through the migration role (``PLAN2FLOW_DATABASE_ADMIN_URL``): the application role may
only read the ``tenants`` table. Listed through the application's own URL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col

from .audit import record
from .db.engine import Database, configured_database, open_database
from .db.models import Tenant
from .db.revision import require_head
from .errors import TenantError
from .settings import MemorySettings, check_tenant, memory_settings


def admin_database(settings: MemorySettings) -> Database:
    """The database as the migration role (on SQLite, the one database), at the newest
    revision: what changes tenants and their settings, which the application may only read."""
    if settings.is_sqlite:
        return configured_database(settings)
    database = open_database(settings.admin_url)
    try:
        require_head(database)
    except BaseException:
        database.dispose()
        raise
    return database


def create_tenant(name: str, settings: MemorySettings | None = None) -> Tenant:
    """Create the tenant `name` (a DNS label) and open its audit journal with the creation;
    :class:`TenantError` if it is not a label or exists."""
    check_tenant(name)
    settings = settings or memory_settings()
    tenant = Tenant(name=name)
    with admin_database(settings) as database, database.connect() as connection:
        try:
            connection.execute(sa.insert(Tenant).values(**tenant.model_dump()))
            connection.commit()
        except sa.exc.IntegrityError:
            raise TenantError(f"tenant {name!r} exists already in {database.url}") from None
        # The first entry of the new tenant's chain says who created it.
        record(database, name, "tenant.created", name)
    return tenant


def list_tenants(settings: MemorySettings | None = None) -> list[Tenant]:
    """Every tenant, by name."""
    settings = settings or memory_settings()
    with configured_database(settings) as database, database.connect() as connection:
        rows = connection.execute(
            sa.select(col(Tenant.id), col(Tenant.name), col(Tenant.created)).order_by(
                col(Tenant.name)
            )
        ).all()
    return [Tenant(id=row.id, name=row.name, created=row.created) for row in rows]


__all__ = ["admin_database", "create_tenant", "list_tenants"]
