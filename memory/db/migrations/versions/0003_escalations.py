"""Escalation records: one row per escalation, tenant-isolated, insert-and-read for the app.

Revision ID: 0003_escalations
Revises: 0002_tenant_isolation

The application role may only SELECT and INSERT: records are a journal. The table is
portable; what follows it is written by hand for PostgreSQL only, like revision 2
(autogenerate sees neither policies nor grants): ``CHECK (tenant <> '')``, ``ENABLE`` and
``FORCE ROW LEVEL SECURITY``, one policy per command on
``NULLIF(current_setting('plan2flow.tenant', true), '')``, and the grants to ``app_role``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import context, op

revision = "0003_escalations"
down_revision = "0002_tenant_isolation"
branch_labels = None
depends_on = None

TABLE = "escalations"
TENANT = "NULLIF(current_setting('plan2flow.tenant', true), '')"
APP_PRIVILEGES = "SELECT, INSERT"
COMMANDS = ("select", "insert", "update", "delete")


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _quote(name: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(name))


def _moment(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("plan", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("tier_reached", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=True),
        sa.Column("winner_score", sa.Float(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("redactions", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        _moment("created"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_escalations_tenant_created", TABLE, ["tenant", "created", "id"])
    op.create_index("ix_escalations_tenant_plan_run", TABLE, ["tenant", "plan", "run_id"])
    if not _postgresql():
        return
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT ck_{TABLE}_tenant CHECK (tenant <> '')")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {TABLE}_select ON {TABLE} FOR SELECT USING (tenant = {TENANT})")
    op.execute(f"CREATE POLICY {TABLE}_insert ON {TABLE} FOR INSERT WITH CHECK (tenant = {TENANT})")
    op.execute(
        f"CREATE POLICY {TABLE}_update ON {TABLE} FOR UPDATE "
        f"USING (tenant = {TENANT}) WITH CHECK (tenant = {TENANT})"
    )
    op.execute(f"CREATE POLICY {TABLE}_delete ON {TABLE} FOR DELETE USING (tenant = {TENANT})")
    app_role = context.config.attributes.get("app_role")
    migrator = op.get_bind().execute(sa.text("SELECT current_user")).scalar_one()
    if app_role and app_role != migrator:
        op.execute(f"GRANT {APP_PRIVILEGES} ON {TABLE} TO {_quote(app_role)}")


def downgrade() -> None:
    if _postgresql():
        grantees = (
            op.get_bind()
            .execute(
                sa.text(
                    "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                    "WHERE table_schema = current_schema() AND table_name = :table "
                    "AND grantee <> current_user"
                ),
                {"table": TABLE},
            )
            .scalars()
            .all()
        )
        for grantee in grantees:
            op.execute(f"REVOKE ALL ON {TABLE} FROM {_quote(grantee)}")
        for command in reversed(COMMANDS):
            op.execute(f"DROP POLICY {TABLE}_{command} ON {TABLE}")
        op.execute(f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT ck_{TABLE}_tenant")
    op.drop_index("ix_escalations_tenant_plan_run", table_name=TABLE)
    op.drop_index("ix_escalations_tenant_created", table_name=TABLE)
    op.drop_table(TABLE)
