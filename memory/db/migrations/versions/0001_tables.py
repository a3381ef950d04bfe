"""The tables: tenants, runs, artifacts, audit entries.

Revision ID: 0001_tables
Revises:
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant", sa.String(length=63), nullable=False)


def _moment(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        _moment("created"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        _tenant(),
        sa.Column("plan", sa.String(), nullable=False),
        sa.Column("graph_hash", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        _moment("started"),
        _moment("ended", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_tenant_plan", "runs", ["tenant", "plan", "started"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        _tenant(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content_digest", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("graph_hash", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        _moment("created"),
        _moment("expires", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_artifacts_tenant_created", "artifacts", ["tenant", "created", "id"])
    op.create_index("ix_artifacts_tenant_plan_run", "artifacts", ["tenant", "plan", "run_id"])
    op.create_index("ix_artifacts_tenant_digest", "artifacts", ["tenant", "digest"])
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        _tenant(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _moment("time"),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "seq", name="uq_audit_tenant_seq"),
    )


def downgrade() -> None:
    op.drop_table("audit_entries")
    op.drop_table("artifacts")
    op.drop_table("runs")
    op.drop_table("tenants")
