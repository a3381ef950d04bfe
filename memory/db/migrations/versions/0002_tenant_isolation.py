"""Tenant isolation on PostgreSQL: row-level security and the application role's grants.

Revision ID: 0002_tenant_isolation
Revises: 0001_tables

Written by hand: autogenerate sees neither policies nor grants. On SQLite there is nothing to
do (the ORM enforces the tenant there, see plan2flow.memory.db.engine).

For every tenant table: ``CHECK (tenant <> '')``, ``ENABLE`` and ``FORCE ROW LEVEL SECURITY``
(the owner, the migration role, is filtered too), and one policy per command comparing
``tenant`` with ``NULLIF(current_setting('plan2flow.tenant', true), '')``: no tenant set, or the
``''`` a custom setting reads after a transaction that set it, matches no row.

The application role (``app_role``, passed by ``plan2flow db upgrade`` from the user of
PLAN2FLOW_DATABASE_URL, when it is not the migrating user) gets SELECT on tenants; SELECT,
INSERT, UPDATE and DELETE on runs and artifacts; only SELECT and INSERT on audit_entries (the
journal is append-only); nothing on alembic_version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002_tenant_isolation"
down_revision = "0001_tables"
branch_labels = None
depends_on = None

TENANT_TABLES = ("runs", "artifacts", "audit_entries")
TENANT = "NULLIF(current_setting('plan2flow.tenant', true), '')"
GRANTS = {
    "tenants": "SELECT",
    "runs": "SELECT, INSERT, UPDATE, DELETE",
    "artifacts": "SELECT, INSERT, UPDATE, DELETE",
    "audit_entries": "SELECT, INSERT",
}


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _quote(name: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(name))


def upgrade() -> None:
    if not _postgresql():
        return
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_tenant CHECK (tenant <> '')")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_select ON {table} FOR SELECT USING (tenant = {TENANT})")
        op.execute(
            f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK (tenant = {TENANT})"
        )
        op.execute(
            f"CREATE POLICY {table}_update ON {table} FOR UPDATE "
            f"USING (tenant = {TENANT}) WITH CHECK (tenant = {TENANT})"
        )
        op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING (tenant = {TENANT})")
    app_role = context.config.attributes.get("app_role")
    migrator = op.get_bind().execute(sa.text("SELECT current_user")).scalar_one()
    if app_role and app_role != migrator:
        for table, privileges in GRANTS.items():
            op.execute(f"GRANT {privileges} ON {table} TO {_quote(app_role)}")


def downgrade() -> None:
    if not _postgresql():
        return
    grantees = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                "WHERE table_schema = current_schema() AND table_name = ANY(:tables) "
                "AND grantee <> current_user"
            ),
            {"tables": list(GRANTS)},
        )
        .scalars()
        .all()
    )
    for grantee in grantees:
        op.execute(f"REVOKE ALL ON {', '.join(GRANTS)} FROM {_quote(grantee)}")
    for table in reversed(TENANT_TABLES):
        for command in ("delete", "update", "insert", "select"):
            op.execute(f"DROP POLICY {table}_{command} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_tenant")
