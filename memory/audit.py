"""The audit journal: who did what, in which tenant and when, append-only and hash-chained.

Every tenant has its own chain (``seq`` 1, 2, …; each entry carries the hash of the one before,
see :mod:`plan2flow.memory.audit_chain`). :func:`append` reads the tenant's last entry and adds
the next one; two appenders that read the same last entry both try the same ``seq``, the unique
``(tenant, seq)`` constraint refuses one of them, and that one reads again and retries, so the
chain never forks (on PostgreSQL appenders first queue on a per-tenant advisory lock, so that
retries stay rare). On PostgreSQL the application role may only INSERT and SELECT the table;
:func:`verify` finds any entry edited, removed, inserted or reordered since.

Other parts record their actions with :func:`record` (a session of its own) or :func:`append`
(inside their own transaction); the runtime's events reach the journal through
:mod:`plan2flow.memory.audit_feed`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .audit_chain import (
    GENESIS_HASH,
    Chained,
    ChainEntry,
    ChainWalk,
    entry_hash,
    entry_record,
    plain_json,
    walk_chain,
)
from .db.models import AuditEntry, utc_now
from .errors import AuditTampered
from .settings import check_tenant

ACTOR_ENV = "PLAN2FLOW_ACTOR"

ACTIONS = (
    "agent.registered",
    "approval.given",
    "approval.requested",
    "approval.timed_out",
    "artifact.deleted",
    "artifact.stored",
    "budget.removed",
    "budget.set",
    "compile",
    "deploy",
    "escalation.recorded",
    "keys.rotated",
    "run.cancelled",
    "run.completed",
    "run.failed",
    "run.started",
    "task.cached",
    "task.completed",
    "task.failed",
    "task.not_run",
    "task.retrying",
    "task.skipped",
    "task.started",
    "tenant.created",
    "tenant.host_allowed",
    "tenant.host_denied",
    "tenant.hosts_cleared",
)
"""Every action the journal records; :func:`append` refuses any other (a typo is a bug)."""

ExportFormat = Literal["json", "jsonl", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("json", "jsonl", "csv")
CSV_COLUMNS = (
    "tenant",
    "seq",
    "time",
    "actor",
    "action",
    "subject",
    "detail",
    "prev_hash",
    "hash",
)

KEY_NAMESPACE = uuid.UUID("3b0f6a52-7c1e-5d4b-8f2a-9e6d1c4b7a30")
"""The uuid5 namespace of the ids of keyed entries (fixed forever: ids are compared later)."""
_APPEND_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")
MAX_ATTEMPTS = 1000
"""Appends that lose the race for a ``seq``: each loss means another appender won, so only a
pathological pile-up comes near this."""


class Sessions(Protocol):
    """What opens tenant-bound sessions, each a transaction that commits when its block ends
    without an error: :class:`plan2flow.memory.db.engine.Database`."""

    def session(self, tenant: str) -> contextlib.AbstractContextManager[Session]: ...


def actor(environ: Mapping[str, str] | None = None) -> str:
    """Who acts: ``PLAN2FLOW_ACTOR`` (a service names itself there), else the OS user name."""
    env = os.environ if environ is None else environ
    named = env.get(ACTOR_ENV, "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return f"uid:{os.getuid()}"


def check_action(action: str) -> str:
    """`action` when it is one of :data:`ACTIONS`, else ValueError."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: one of {', '.join(ACTIONS)}")
    return action


def key_id(tenant: str, key: str) -> uuid.UUID:
    """The id of the entry recorded under idempotency `key` in `tenant`.

    >>> key_id("acme", "event:42") == key_id("acme", "event:42") != key_id("globex", "event:42")
    True
    """
    return uuid.uuid5(KEY_NAMESPACE, f"{tenant}\n{key}")


def append(
    session: Session,
    tenant: str,
    actor: str,
    action: str,
    subject: str = "",
    detail: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
) -> AuditEntry:
    """Add the next entry of `tenant`'s chain inside `session`'s transaction (a savepoint, so a
    lost race undoes nothing of the caller's) and return it; the caller commits.

    With `key` (an idempotency key, e.g. ``event:<event id>``) the entry's id derives from it,
    and an append whose key is already in the journal adds nothing and returns the earlier entry:
    the primary key makes that hold even for two appenders at once.
    """
    check_tenant(tenant)
    check_action(action)
    plain = plain_json(dict(detail or {}))
    entry_uuid = key_id(tenant, key) if key is not None else uuid.uuid4()
    _queue_behind_other_appenders(session, tenant)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if key is not None and (earlier := _entry(session, entry_uuid)) is not None:
            return earlier
        seq, prev_hash = _last(session, tenant)
        entry = AuditEntry(
            id=entry_uuid,
            tenant=tenant,
            seq=seq + 1,
            time=utc_now(),
            actor=actor,
            action=action,
            subject=subject,
            detail=plain,
            prev_hash=prev_hash,
            hash="",
        )
        entry.hash = entry_hash(entry)
        try:
            with session.begin_nested():
                session.add(entry)
        except sa.exc.IntegrityError:
            if attempt == MAX_ATTEMPTS:
                raise
            continue
        return entry
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class KeyedEntry:
    """An entry to append once under its idempotency key (:func:`append_keyed`)."""

    action: str
    subject: str
    detail: Mapping[str, Any]
    key: str


def append_keyed(
    session: Session, tenant: str, actor: str, items: Sequence[KeyedEntry]
) -> list[ChainEntry]:
    """Append `items` in order, each unless its key is already in the journal (or earlier in
    `items`), inside `session`'s transaction, and return the entries added; the caller commits.

    The event feed's batch: one read of the chain's end, one lookup of all the keys and one
    multi-row INSERT, where :func:`append` per item reads both, builds an ORM object and flushes
    it (about 1 ms of CPU each, which a run's tasks paid through the GIL). It does not retry: an
    insert that loses a race for a ``seq`` (an appender that skipped the tenant's lock) raises
    IntegrityError and adds nothing, and the caller may fall back to :func:`append`.
    """
    check_tenant(tenant)
    for item in items:
        check_action(item.action)
    if not items:
        return []
    ids = [key_id(tenant, item.key) for item in items]
    _queue_behind_other_appenders(session, tenant)
    seen = set(session.exec(select(AuditEntry.id).where(col(AuditEntry.id).in_(ids))).all())
    added: list[ChainEntry] = []
    rows: list[dict[str, Any]] = []
    with session.begin_nested():
        seq, prev_hash = _last(session, tenant)
        for item, entry_uuid in zip(items, ids, strict=True):
            if entry_uuid in seen:
                continue
            seen.add(entry_uuid)
            seq += 1
            unhashed = ChainEntry(
                tenant=tenant,
                seq=seq,
                time=utc_now(),
                actor=actor,
                action=item.action,
                subject=item.subject,
                detail=plain_json(dict(item.detail)),
                prev_hash=prev_hash,
                hash="",
            )
            entry = dataclasses.replace(unhashed, hash=entry_hash(unhashed))
            prev_hash = entry.hash
            added.append(entry)
            rows.append({"id": entry_uuid, **_columns(entry)})
        if rows:
            session.execute(sa.insert(AuditEntry), rows)
    return added


def _columns(entry: ChainEntry) -> dict[str, Any]:
    """The entry's columns (``dataclasses.asdict`` would deep-copy its detail, at a cost)."""
    return {field.name: getattr(entry, field.name) for field in dataclasses.fields(entry)}


def _queue_behind_other_appenders(session: Session, tenant: str) -> None:
    """PostgreSQL: hold the tenant's append lock (an advisory lock, until the transaction ends).
    Appenders then wait their turn, where they would all read the same last entry and all but
    one retry, again and again under load; the unique seq stays what guarantees the chain."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_APPEND_LOCK, {"key": append_lock_key(tenant)})


def append_lock_key(tenant: str) -> int:
    """The advisory lock key of `tenant`'s appends: 64 bits of a hash of its name."""
    digest = hashlib.sha256(f"plan2flow.audit\n{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _last(session: Session, tenant: str) -> tuple[int, str]:
    row = session.exec(
        select(AuditEntry.seq, AuditEntry.hash)
        .where(AuditEntry.tenant == tenant)
        .order_by(col(AuditEntry.seq).desc())
        .limit(1)
    ).first()
    return (0, GENESIS_HASH) if row is None else (row[0], row[1])


def _entry(session: Session, entry_uuid: uuid.UUID) -> AuditEntry | None:
    return session.exec(select(AuditEntry).where(AuditEntry.id == entry_uuid)).first()


def record(
    database: Sessions,
    tenant: str,
    action: str,
    subject: str = "",
    detail: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
    who: str | None = None,
) -> AuditEntry:
    """:func:`append` in a transaction of its own, by :func:`actor` unless `who` is given."""
    with database.session(tenant) as session:
        return append(session, tenant, who or actor(), action, subject, detail, key=key)


def entries(
    session: Session, tenant: str, since: dt.datetime | None = None, *, batch: int = 1000
) -> Generator[AuditEntry, None, None]:
    """`tenant`'s entries in ``seq`` order (from `since` on, when given), read `batch` rows at
    a time; close the iterator when stopping early."""
    check_tenant(tenant)
    statement = select(AuditEntry).where(AuditEntry.tenant == tenant)
    if since is not None:
        statement = statement.where(col(AuditEntry.time) >= since)
    statement = statement.order_by(col(AuditEntry.seq)).execution_options(yield_per=batch)
    result = session.exec(statement)
    try:
        yield from result
    finally:  # a reader that stops early (verify, at a problem) frees PostgreSQL's cursor
        result.close()


def verify(session: Session, tenant: str) -> ChainWalk:
    """Check `tenant`'s whole chain: the count and head when it is intact, else
    :class:`AuditTampered` naming the first bad entry and why."""
    with contextlib.closing(entries(session, tenant)) as chain:
        walk = walk_chain(chain, tenant)
    if walk.problem is not None:
        raise AuditTampered(
            f"the audit journal of tenant {tenant!r} is broken: {walk.problem}",
            tenant=tenant,
            entry=walk.problem.seq,
        )
    return walk


def export(entries: Iterable[Chained], stream: IO[str], format: ExportFormat = "jsonl") -> int:
    """Write `entries` to `stream` as one JSON array (``json``), one object per line (``jsonl``)
    or CSV with a header (``csv``, ``detail`` as compact JSON; open files with ``newline=""``);
    return how many. Each record has every hashed field and the hash, so an export can be
    verified on its own (:meth:`~plan2flow.memory.audit_chain.ChainEntry.from_dict`)."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}: one of {', '.join(EXPORT_FORMATS)}")
    if format == "csv":
        return _export_csv(entries, stream)
    count = 0
    if format == "json":
        stream.write("[")
    for entry in entries:
        line = _compact(entry_record(entry))
        if format == "json":
            stream.write(f"{',' if count else ''}\n  {line}")
        else:
            stream.write(f"{line}\n")
        count += 1
    if format == "json":
        stream.write("\n]\n" if count else "]\n")
    return count


def _export_csv(entries: Iterable[Chained], stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for entry in entries:
        row = entry_record(entry)
        writer.writerow({**row, "detail": _compact(row["detail"])})
        count += 1
    return count


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
