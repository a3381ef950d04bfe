"""Per-tenant outbound host allow-lists: a nullable JSON column of ``tenants``.

Revision ID: 0005_tenant_hosts
Revises: 0004_costs_budgets

NULL means the tenant has no list of its own (its escalations call what their plans allow); a
list, maybe empty, is what they may call on top of that. Like the rest of ``tenants``, it is
written by the migration role and only read by the application role (whose grant on the table,
SELECT, covers the new column): no new grant or policy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_tenant_hosts"
down_revision = "0004_costs_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("allowed_hosts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("allowed_hosts")
