"""Costs and budgets: the cost ledger (compute seconds per task attempt) and spending limits.

Revision ID: 0004_costs_budgets
Revises: 0003_escalations

Both tables are tenant tables. The tables are portable; what follows them is written by hand
for PostgreSQL only, like revisions 2 and 3: ``CHECK (tenant <> '')``, ``ENABLE`` and ``FORCE
ROW LEVEL SECURITY``, one policy per command on ``NULLIF(current_setting('plan2flow.tenant',
true), '')``, and the grants to ``app_role``: the ledger is a journal (SELECT, INSERT), budgets
are set, changed and removed (SELECT, INSERT, UPDATE, DELETE).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import context, op

revision = "0004_costs_budgets"
down_revision = "0003_escalations"
branch_labels = None
depends_on = None

TENANT = "NULLIF(current_setting('plan2flow.tenant', true), '')"
GRANTS = {"costs": "SELECT, INSERT", "budgets": "SELECT, INSERT, UPDATE, DELETE"}
COMMANDS = ("select", "insert", "update", "delete")


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _quote(name: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote(name))


def _moment(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _isolate(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_tenant CHECK (tenant <> '')")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_select ON {table} FOR SELECT USING (tenant = {TENANT})")
    op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK (tenant = {TENANT})")
    op.execute(
        f"CREATE POLICY {table}_update ON {table} FOR UPDATE "
        f"USING (tenant = {TENANT}) WITH CHECK (tenant = {TENANT})"
    )
    op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING (tenant = {TENANT})")


def upgrade() -> None:
    op.create_table(
        "costs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("plan", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        _moment("created"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_costs_tenant_created", "costs", ["tenant", "created"])
    op.create_index("ix_costs_tenant_plan_run", "costs", ["tenant", "plan", "run_id"])
    op.create_table(
        "budgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        _moment("updated"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "scope", "name", name="uq_budgets_scope"),
    )
    if not _postgresql():
        return
    for table in GRANTS:
        _isolate(table)
    app_role = context.config.attributes.get("app_role")
    migrator = op.get_bind().execute(sa.text("SELECT current_user")).scalar_one()
    if app_role and app_role != migrator:
        for table, privileges in GRANTS.items():
            op.execute(f"GRANT {privileges} ON {table} TO {_quote(app_role)}")


def downgrade() -> None:
    if _postgresql():
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
        for table in reversed(GRANTS):
            for command in reversed(COMMANDS):
                op.execute(f"DROP POLICY {table}_{command} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_tenant")
    op.drop_table("budgets")
    op.drop_index("ix_costs_tenant_plan_run", table_name="costs")
    op.drop_index("ix_costs_tenant_created", table_name="costs")
    op.drop_table("costs")
