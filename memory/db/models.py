"""The tables of project memory.

Every table but ``tenants`` carries ``tenant`` and is isolated by row-level security on
PostgreSQL (policies in the migrations, on ``NULLIF(current_setting('plan2flow.tenant', true),
'')``) and by the ORM on SQLite. Keys are UUIDs: integer keys would tell one tenant how many rows
another has. Queries still filter by tenant explicitly, which keeps prepared plans fast.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A moment in UTC, aware on the way in and out on both databases.

    PostgreSQL keeps ``timestamptz``; SQLite keeps text without an offset and would hand back
    naive datetimes, which would hash and compare differently from PostgreSQL's. A naive value
    is refused: its time zone would be a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime ({value.isoformat()}): give it a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, **kwargs)


def _json(**kwargs: Any) -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, **kwargs)


class Tenant(SQLModel, table=True):
    """A tenant: a DNS label. Created by the migration role; the application may only read."""

    __tablename__ = "tenants"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=63, unique=True)
    created: datetime = _timestamp()
    allowed_hosts: list[str] | None = Field(default=None, sa_type=sa.JSON)
    """The hosts its escalations may call, on top of their plans' rule; None: no list of its
    own (plan2flow.memory.tenant_hosts)."""


class Run(SQLModel, table=True):
    """A plan run; its parameters may hold secrets, so they are stored encrypted."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_tenant_plan", "tenant", "plan", "started"),)

    id: uuid.UUID = Field(primary_key=True)  # the Prefect flow run id
    tenant: str = Field(max_length=63)
    plan: str
    graph_hash: str = Field(max_length=64)
    parameters: bytes | None = Field(default=None, sa_type=sa.LargeBinary)  # encrypted JSON
    state: str = Field(default="running", max_length=32)
    actor: str = ""
    started: datetime = _timestamp()
    ended: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ArtifactRecord(SQLModel, table=True):
    """One stored artifact: metadata here, bytes in the blob store under ``digest``.

    ``digest`` is the sha256 of the stored bytes (for a sensitive artifact: of its ciphertext);
    ``content_digest`` is the sha256 of the plaintext, which the resume cache keys on. For a
    sensitive artifact ``wrapped_key`` holds its data key wrapped by master key ``key_id``.
    """

    __tablename__ = "artifacts"
    __table_args__ = (
        sa.Index("ix_artifacts_tenant_created", "tenant", "created", "id"),
        sa.Index("ix_artifacts_tenant_plan_run", "tenant", "plan", "run_id"),
        sa.Index("ix_artifacts_tenant_digest", "tenant", "digest"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant: str = Field(max_length=63)
    name: str
    kind: str = Field(default="file", max_length=64)
    media_type: str = Field(default="application/octet-stream", max_length=255)
    size: int = Field(ge=0, sa_type=sa.BigInteger)
    digest: str = Field(max_length=64)
    content_digest: str = Field(max_length=64)
    plan: str = ""
    run_id: uuid.UUID | None = None
    task_id: str = ""
    graph_hash: str = Field(default="", max_length=64)
    labels: dict[str, str] = _json()
    sensitive: bool = False
    key_id: str | None = Field(default=None, max_length=64)
    wrapped_key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created: datetime = _timestamp()
    expires: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """One entry of a tenant's hash chain: ``hash`` covers every field and ``prev_hash``.

    On PostgreSQL the application role may only INSERT and SELECT this table.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (sa.UniqueConstraint("tenant", "seq", name="uq_audit_tenant_seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant: str = Field(max_length=63)
    seq: int = Field(ge=1, sa_type=sa.BigInteger)
    time: datetime = _timestamp()
    actor: str
    action: str = Field(max_length=64)
    subject: str = ""
    detail: dict[str, Any] = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class EscalationRow(SQLModel, table=True):
    """One escalation of a code-producing task: the tier it reached and why, the winner, every
    variant's score breakdown, tokens and cost. Redactions are counts per entity type, never a
    value. On PostgreSQL the application role may only INSERT and SELECT: a journal."""

    __tablename__ = "escalations"
    __table_args__ = (
        sa.Index("ix_escalations_tenant_created", "tenant", "created", "id"),
        sa.Index("ix_escalations_tenant_plan_run", "tenant", "plan", "run_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant: str = Field(max_length=63)
    plan: str = ""
    run_id: str = ""
    """The flow run's id as the runtime knows it (``local`` outside a flow run)."""
    task_id: str = ""
    outcome: str = Field(max_length=16)
    tier_reached: str = Field(max_length=16)
    reason: str = ""
    threshold: float = Field(sa_type=sa.Float)
    winner: str | None = Field(default=None, max_length=64)
    winner_score: float | None = Field(default=None, sa_type=sa.Float)
    model: str | None = None
    variants: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    """Every variant: label, tier, model, score, signal values, tests, tokens, cost, problem."""
    prompt_tokens: int = Field(default=0, ge=0, sa_type=sa.BigInteger)
    completion_tokens: int = Field(default=0, ge=0, sa_type=sa.BigInteger)
    cost_usd: float = Field(default=0.0, ge=0, sa_type=sa.Float)
    estimated: bool = False
    """Some variant's tokens (and so the cost) are estimated: its server reported no usage."""
    redactions: dict[str, int] = _json()
    seconds: float = Field(default=0.0, sa_type=sa.Float)
    created: datetime = _timestamp()


class CostEntry(SQLModel, table=True):
    """One charge of the cost ledger: the compute seconds of one task attempt, priced when it
    ran (model tokens are charged in ``escalations``). On PostgreSQL the application role may
    only INSERT and SELECT: a journal."""

    __tablename__ = "costs"
    __table_args__ = (
        sa.Index("ix_costs_tenant_created", "tenant", "created"),
        sa.Index("ix_costs_tenant_plan_run", "tenant", "plan", "run_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant: str = Field(max_length=63)
    plan: str = ""
    run_id: str = ""
    """The flow run's id as the runtime knows it (like ``escalations.run_id``)."""
    task_id: str = ""
    attempt: int = Field(default=1, ge=1)
    kind: str = Field(default="compute", max_length=16)
    seconds: float = Field(default=0.0, ge=0, sa_type=sa.Float)
    usd: float = Field(default=0.0, ge=0, sa_type=sa.Float)
    created: datetime = _timestamp()


class BudgetRow(SQLModel, table=True):
    """A spending limit per period: of the tenant (``scope`` tenant, ``name`` empty), set with
    ``plan2flow budgets set``, or of one plan (``scope`` plan), as its plan declares it."""

    __tablename__ = "budgets"
    __table_args__ = (sa.UniqueConstraint("tenant", "scope", "name", name="uq_budgets_scope"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant: str = Field(max_length=63)
    scope: str = Field(max_length=16)
    name: str = ""
    usd: float = Field(ge=0, sa_type=sa.Float)
    period: str = Field(max_length=16)
    actor: str = ""
    updated: datetime = _timestamp()


TENANT_TABLES = ("runs", "artifacts", "audit_entries", "escalations", "costs", "budgets")
"""The tables under row-level security (every one with a ``tenant`` column)."""
