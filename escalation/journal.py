"""The escalation journal: one record per escalation, appended to a JSONL file.

``$PLAN2FLOW_HOME/escalations/journal.jsonl``, one JSON object per line, appended under an
exclusive lock so that tasks running in parallel never interleave lines. A record names the
task, the tier reached and why, and for every variant its score breakdown, model, tokens and
cost; redactions are counted per entity type, never with a value. (Project memory will hold
these records once it has a table for them; the file's format is the record's.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from plan2flow.home import plan2flow_home

from .chain import ChainResult
from .errors import JournalError, RecordNotFound
from .variants import Variant

JOURNAL_FILE = Path("escalations") / "journal.jsonl"


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


class EscalationRecord(_Record):
    id: str
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
    redactions: dict[str, int]
    seconds: float
    variants: list[VariantRecord]


def journal_path(environ: Mapping[str, str] | None = None) -> Path:
    return plan2flow_home(environ) / JOURNAL_FILE


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
    )


def make_record(
    result: ChainResult, *, tenant: str, plan: str, flow_run_id: str, now: dt.datetime
) -> EscalationRecord:
    winner = result.winner
    return EscalationRecord(
        id=uuid.uuid4().hex[:12],
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
        redactions=result.redactions,
        seconds=result.seconds,
        variants=[_variant(v) for v in result.variants],
    )


def append(record: EscalationRecord, path: Path) -> None:
    """Append one record as one line, under an exclusive lock, and flush it to disk."""
    line = record.model_dump_json() + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as journal:
            fcntl.flock(journal, fcntl.LOCK_EX)
            journal.write(line)
            journal.flush()
            os.fsync(journal.fileno())
    except OSError as error:
        raise JournalError(f"cannot write the escalation journal {path}: {error}") from None


def records(path: Path) -> Iterator[EscalationRecord]:
    """Every record, oldest first; none when there is no journal yet."""
    if not path.exists():
        return
    try:
        with open(path, encoding="utf-8") as journal:
            fcntl.flock(journal, fcntl.LOCK_SH)
            lines = journal.readlines()
    except OSError as error:
        raise JournalError(f"cannot read the escalation journal {path}: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield EscalationRecord.model_validate_json(line)
        except ValidationError:
            raise JournalError(f"{path}:{number}: not an escalation record") from None


def find(path: Path, record_id: str) -> EscalationRecord:
    """The record whose id is or starts with ``record_id`` (a unique prefix)."""
    found = [r for r in records(path) if r.id.startswith(record_id)] if record_id else []
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise RecordNotFound(f"{what} escalation record(s) with id {record_id!r} in {path}")
    return found[0]
