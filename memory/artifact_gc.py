"""Retention and garbage collection of one tenant's artifacts.

:func:`collect` runs in three steps:

1. **Retention**: rows whose ``expires`` has passed go, and with ``older_than`` the rows created
   before ``now - older_than``; ``keep_last`` keeps the newest N of every (plan, task, name)
   whatever their age (alone, it keeps only those). Each deletion is a row and its
   ``artifact.deleted`` audit entry in one transaction.
2. **Blobs**: the cutoff ``now - grace`` is taken *first*, then the digests that rows reference
   are read, then every stored blob that is unreferenced and untouched since the cutoff is
   deleted (the store re-checks the touch time at the last moment). A writer puts its blob
   (touching it) before it commits its row, within the grace period: its blob is either seen
   referenced or seen touched, never deleted.
3. **Temporaries** of writers killed mid-write, untouched since the cutoff.

With ``dry_run`` nothing is deleted and the report says what would be.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col, select

from .blobs import BlobInfo, age_cutoff
from .db.models import ArtifactRecord, utc_now
from .errors import MemoryStoreError

if TYPE_CHECKING:
    from .artifacts import ArtifactStore

LOAD_BATCH = 500


@dataclass(frozen=True)
class GcReport:
    """What a collection deleted (or, with ``dry_run``, would delete)."""

    expired: Sequence[ArtifactRecord]
    retired: Sequence[ArtifactRecord]
    blobs: Sequence[BlobInfo]
    temporaries: Sequence[str]
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        """The bytes of the blobs deleted."""
        return sum(blob.size for blob in self.blobs)


def _expired_ids(store: ArtifactStore, now: dt.datetime) -> list[uuid.UUID]:
    statement = (
        select(ArtifactRecord.id)
        .where(col(ArtifactRecord.tenant) == store.tenant)
        .where(col(ArtifactRecord.expires).is_not(None))
        .where(col(ArtifactRecord.expires) <= now)
        .order_by(col(ArtifactRecord.created), col(ArtifactRecord.id))
    )
    with store.database.session(store.tenant) as session:
        return list(session.exec(statement).all())


def _retired_ids(
    store: ArtifactStore, now: dt.datetime, older_than: dt.timedelta | None, keep_last: int | None
) -> list[uuid.UUID]:
    """Rows past ``older_than`` that are not among the newest ``keep_last`` of their group."""
    if older_than is None and keep_last is None:
        return []
    record = ArtifactRecord
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(col(record.plan), col(record.task_id), col(record.name)),
            order_by=(col(record.created).desc(), col(record.id).desc()),
        )
        .label("rank")
    )
    ranked = (
        sa.select(col(record.id).label("id"), col(record.created).label("created"), rank)
        .where(col(record.tenant) == store.tenant)
        .subquery()
    )
    statement = sa.select(ranked.c.id)
    if keep_last is not None:
        statement = statement.where(ranked.c.rank > keep_last)
    if older_than is not None:
        statement = statement.where(ranked.c.created < now - older_than)
    statement = statement.order_by(ranked.c.created, ranked.c.id)
    with store.database.session(store.tenant) as session:
        return list(session.execute(statement).scalars().all())


def _records(store: ArtifactStore, ids: list[uuid.UUID]) -> list[ArtifactRecord]:
    found: list[ArtifactRecord] = []
    for start in range(0, len(ids), LOAD_BATCH):
        batch = ids[start : start + LOAD_BATCH]
        with store.database.session(store.tenant) as session:
            found.extend(
                session.exec(
                    select(ArtifactRecord)
                    .where(col(ArtifactRecord.tenant) == store.tenant)
                    .where(col(ArtifactRecord.id).in_(batch))
                    .order_by(col(ArtifactRecord.created), col(ArtifactRecord.id))
                ).all()
            )
    return found


def _referenced_without(store: ArtifactStore, leaving: set[uuid.UUID]) -> set[str]:
    """The digests rows reference once the rows ``leaving`` are gone (for a dry run)."""
    statement = select(ArtifactRecord.id, ArtifactRecord.digest).where(
        col(ArtifactRecord.tenant) == store.tenant
    )
    with store.database.session(store.tenant) as session:
        return {digest for ident, digest in session.exec(statement) if ident not in leaving}


def collect(
    store: ArtifactStore,
    *,
    older_than: dt.timedelta | None = None,
    keep_last: int | None = None,
    grace: dt.timedelta,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> GcReport:
    """Apply retention to ``store``'s tenant, then delete its unreferenced blobs and stale
    temporaries; see the module docstring."""
    if keep_last is not None and keep_last < 0:
        raise MemoryStoreError(f"keep-last must be 0 or more, not {keep_last}")
    if grace < dt.timedelta(0) or (older_than is not None and older_than < dt.timedelta(0)):
        raise MemoryStoreError("durations must not be negative")
    now = now or utc_now()
    expired_ids = _expired_ids(store, now)
    leaving = set(expired_ids)
    retired_ids = [i for i in _retired_ids(store, now, older_than, keep_last) if i not in leaving]
    if dry_run:
        expired, retired = _records(store, expired_ids), _records(store, retired_ids)
    else:
        expired = store.delete_rows(expired_ids, reason="expired")
        retired = store.delete_rows(retired_ids, reason="retention")
    cutoff = age_cutoff(grace.total_seconds())  # before the references are read
    if dry_run:
        referenced = _referenced_without(store, leaving | set(retired_ids))
    else:
        referenced = store.referenced()
    blobs = []
    for blob in store.blobs.iter_blobs(store.tenant):
        if blob.digest in referenced or blob.touched >= cutoff:
            continue
        if dry_run or store.blobs.delete(store.tenant, blob.digest, untouched_since=cutoff):
            blobs.append(blob)
    temporaries: list[str] = []
    if not dry_run:
        temporaries = store.blobs.collect_temporaries(store.tenant, untouched_since=cutoff)
    return GcReport(expired, retired, blobs, temporaries, dry_run)
