"""The escalation journal: one record per escalation, kept in project memory.

A record names the task, the tier reached and why, and for every variant its score breakdown,
model, tokens and cost; redactions are counted per entity type, never with a value. It is a row
of the ``escalations`` table (:class:`plan2flow.memory.db.models.EscalationRow`), written through
``Database.session(tenant)`` with an ``escalation.recorded`` entry of the audit journal in the
same transaction: both are there, or neither. On PostgreSQL row-level security keeps tenants
apart and the application role may only insert and read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import col, select

from plan2flow.memory import audit
from plan2flow.memory.db.engine import Database
from plan2flow.memory.db.models import EscalationRow
from plan2flow.memory.errors import MemoryStoreError

from .chain import ChainResult
from .errors import JournalError, RecordNotFound
from .variants import Variant

AUDIT_ACTION = "escalation.recorded"
SHORT_ID = 12
"""How many hex digits of a record's id are shown (and enough to find it again)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantRecord(_Record):
    label: str
    tier: str
    model: str | None
    temperature: float | None
    score: float
    values: dict[str, float | None]
    """Each signal's value from 0 to 1; null where it was not measured."""
    tests_passed: int | None
    tests_total: int | None
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    """The tokens are estimated: the server reported no usage."""
    cost_usd: float
    attempts: int
    delays: list[float]
    problem: str | None
    scoring_seconds: float | None
    checks: str | None = None
    """Why the variant failed the downstream checks (validate, test); None when it passed them
    or none ran."""


class EscalationRecord(_Record):
    id: str
    """The row's UUID as 32 hex digits; the first 12 are shown and find it again."""
    time: dt.datetime
    tenant: str
    plan: str
    flow_run_id: str
    task_id: str
    outcome: str
    tier_reached: str
    reason: str
    threshold: float
    winner: str | None
    winner_score: float | None
    model: str | None
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    """Some variant's tokens (and so the cost) are estimated."""
    redactions: dict[str, int]
    seconds: float
    variants: list[VariantRecord]

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID]


def _variant(variant: Variant) -> VariantRecord:
    measured = variant.measured
    return VariantRecord(
        label=variant.label,
        tier=variant.tier,
        model=variant.model,
        temperature=variant.temperature,
        score=variant.score,
        values=dict(variant.values),
        tests_passed=None
        if measured is None or measured.tests_passed is None
        else len(measured.tests_passed),
        tests_total=None if measured is None else measured.tests_total,
        prompt_tokens=variant.prompt_tokens,
        completion_tokens=variant.completion_tokens,
        estimated=variant.estimated,
        cost_usd=variant.cost_usd,
        attempts=variant.attempts,
        delays=list(variant.delays),
        problem=variant.problem,
        scoring_seconds=None if measured is None else round(measured.seconds, 3),
        checks=variant.checks,
    )


def make_record(
    result: ChainResult, *, tenant: str, plan: str, flow_run_id: str, now: dt.datetime
) -> EscalationRecord:
    winner = result.winner
    return EscalationRecord(
        id=uuid.uuid4().hex,
        time=now,
        tenant=tenant,
        plan=plan,
        flow_run_id=flow_run_id,
        task_id=result.task_id,
        outcome=result.outcome,
        tier_reached=result.tier_reached,
        reason=result.reason,
        threshold=result.threshold,
        winner=None if winner is None else winner.label,
        winner_score=None if winner is None else winner.score,
        model=None if winner is None else winner.model,
        cost_usd=result.cost_usd,
        prompt_tokens=sum(v.prompt_tokens for v in result.variants),
        completion_tokens=sum(v.completion_tokens for v in result.variants),
        estimated=any(v.estimated for v in result.variants),
        redactions=result.redactions,
        seconds=result.seconds,
        variants=[_variant(v) for v in result.variants],
    )


def _row(record: EscalationRecord) -> EscalationRow:
    return EscalationRow(
        id=uuid.UUID(hex=record.id),
        tenant=record.tenant,
        plan=record.plan,
        run_id=record.flow_run_id,
        task_id=record.task_id,
        outcome=record.outcome,
        tier_reached=record.tier_reached,
        reason=record.reason,
        threshold=record.threshold,
        winner=record.winner,
        winner_score=record.winner_score,
        model=record.model,
        variants=[v.model_dump(mode="json") for v in record.variants],
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost_usd=record.cost_usd,
        estimated=record.estimated,
        redactions=dict(record.redactions),
        seconds=record.seconds,
        created=record.time,
    )


def _record(row: EscalationRow) -> EscalationRecord:
    try:
        return EscalationRecord(
            id=row.id.hex,
            time=row.created,
            tenant=row.tenant,
            plan=row.plan,
            flow_run_id=row.run_id,
            task_id=row.task_id,
            outcome=row.outcome,
            tier_reached=row.tier_reached,
            reason=row.reason,
            threshold=row.threshold,
            winner=row.winner,
            winner_score=row.winner_score,
            model=row.model,
            cost_usd=row.cost_usd,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            estimated=row.estimated,
            redactions=dict(row.redactions),
            seconds=row.seconds,
            variants=[VariantRecord.model_validate(v) for v in row.variants],
        )
    except ValidationError as error:
        raise JournalError(f"escalation {row.id.hex[:SHORT_ID]} is not a record: {error}") from None


def _audit_detail(record: EscalationRecord) -> dict[str, Any]:
    return {
        "record_id": record.id,
        "plan": record.plan,
        "run_id": record.flow_run_id,
        "outcome": record.outcome,
        "tier_reached": record.tier_reached,
        "winner": record.winner,
        "model": record.model,
        "cost_usd": record.cost_usd,
        "redactions": dict(record.redactions),
    }


def store(
    database: Database,
    record: EscalationRecord,
    *,
    who: str | None = None,
    human: list[dict[str, Any]] | None = None,
) -> None:
    """Write ``record`` and its audit entry in one transaction of its tenant; a database that
    refuses it raises :class:`JournalError` (the escalation's outcome is not lost: the task's
    result and the ``finished`` event carry it). ``human``, the answers at the human tier,
    go into the audit entry, by ``who`` (the person whose answer ended it)."""
    try:
        with database.session(record.tenant) as session:
            session.add(_row(record))
            session.flush()
            audit.append(
                session,
                record.tenant,
                who or audit.actor(),
                AUDIT_ACTION,
                record.task_id,
                {**_audit_detail(record), **({"human": human} if human else {})},
            )
    except (MemoryStoreError, sa.exc.SQLAlchemyError) as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        raise JournalError(f"cannot record escalation {record.short_id}: {reason}") from None


def records(
    database: Database, tenant: str, *, plan: str | None = None, run: str | None = None
) -> Iterator[EscalationRecord]:
    """``tenant``'s records, oldest first, of one plan and one flow run when given."""
    statement = select(EscalationRow).where(EscalationRow.tenant == tenant)
    if plan is not None:
        statement = statement.where(EscalationRow.plan == plan)
    if run is not None:
        statement = statement.where(EscalationRow.run_id == run)
    statement = statement.order_by(col(EscalationRow.created), col(EscalationRow.id))
    with database.session(tenant) as session:
        rows = session.exec(statement).all()
    for row in rows:
        yield _record(row)


def _id_range(prefix: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids that start with ``prefix`` (hex digits, dashes ignored) as a range, which both
    databases search through the primary key; None for a prefix that is not hex."""
    digits = prefix.replace("-", "").lower()
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return uuid.UUID(hex=digits.ljust(32, "0")), uuid.UUID(hex=digits.ljust(32, "f"))


def find(database: Database, tenant: str, record_id: str) -> EscalationRecord:
    """``tenant``'s record whose id is or starts with ``record_id`` (a unique prefix)."""
    bounds = _id_range(record_id)
    rows: list[EscalationRow] = []
    if bounds is not None:
        low, high = bounds
        statement = (
            select(EscalationRow)
            .where(EscalationRow.tenant == tenant)
            .where(col(EscalationRow.id) >= low, col(EscalationRow.id) <= high)
            .limit(2)
        )
        with database.session(tenant) as session:
            rows = list(session.exec(statement).all())
    if len(rows) != 1:
        what = "no" if not rows else "more than one"
        raise RecordNotFound(
            f"{what} escalation record of tenant {tenant!r} has an id starting {record_id!r}"
        )
    return _record(rows[0])
