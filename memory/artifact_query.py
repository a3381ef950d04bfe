"""Searching artifacts: filters, keyset pages and their cursors (pure: statements, no I/O).

A page is the newest artifacts first, ordered by ``(created, id)`` descending, which the index
``(tenant, created, id)`` serves directly. The cursor of the next page is the ``(created, id)``
of the last row shown, so a page never skips or repeats a row when artifacts are added or
removed in between (an offset would); it is opaque text for people and scripts to pass back.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from .db.models import ArtifactRecord, UTCDateTime
from .errors import MemoryStoreError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEFAULT_PAGE = 50
MAX_PAGE = 1000
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")


def check_label_key(key: str) -> str:
    """``key`` when it can name a label (1 to 63 letters, digits, ``_ . - /``), else an error.

    >>> check_label_key("team")
    'team'
    """
    if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
        raise MemoryStoreError(
            f"label key {key!r} is not 1 to 63 letters, digits, '_', '.', '-' or '/' (starting "
            "with a letter or digit)"
        )
    return key


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels as a plain dict, every key checked and every value a string."""
    checked = {}
    for key, value in (labels or {}).items():
        if not isinstance(value, str):
            raise MemoryStoreError(f"label {key!r}: the value must be text, not {value!r}")
        checked[check_label_key(key)] = value
    return checked


def parse_label(text: str) -> tuple[str, str]:
    """``key=value`` as a pair.

    >>> parse_label("team=data=eng")
    ('team', 'data=eng')
    """
    key, separator, value = text.partition("=")
    if not separator:
        raise MemoryStoreError(f"label {text!r} is not key=value")
    return check_label_key(key), value


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the ``(created, id)`` of its last artifact."""

    created: dt.datetime
    id: uuid.UUID

    def encode(self) -> str:
        """Short text to pass back (URL- and shell-safe): the microseconds since the epoch and
        the id, in hex.

        >>> c = Cursor(dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), uuid.UUID(int=1))
        >>> c.encode()
        '6475ef6574f35.00000000000000000000000000000001'
        >>> Cursor.decode(c.encode()) == c
        True
        """
        micros = (self.created - _EPOCH) // dt.timedelta(microseconds=1)
        return f"{micros:x}.{self.id.hex}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor :meth:`encode` made, or MemoryStoreError."""
        micros, _, ident = text.partition(".")
        try:
            created = _EPOCH + dt.timedelta(microseconds=int(micros, 16))
            return cls(created, uuid.UUID(hex=ident))
        except (ValueError, OverflowError):
            raise MemoryStoreError(
                f"cursor {text!r} is not one `artifacts list` printed (pass its next cursor "
                "back as it is)"
            ) from None


@dataclass(frozen=True)
class ArtifactQuery:
    """What to list: every filter given must match; labels all of them (``key == value``)."""

    plan: str | None = None
    run_id: uuid.UUID | None = None
    task_id: str | None = None
    kind: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    since: dt.datetime | None = None
    limit: int = DEFAULT_PAGE
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise MemoryStoreError(f"a page holds 1 to {MAX_PAGE} artifacts, not {self.limit}")
        if self.since is not None and self.since.tzinfo is None:
            raise MemoryStoreError("`since` needs a time zone (a naive time would be a guess)")
        check_labels(self.labels)


@dataclass(frozen=True)
class ArtifactPage:
    """One page, newest first; ``next`` is the cursor of the page after it (None: the last)."""

    records: Sequence[ArtifactRecord]
    next: Cursor | None


def _conditions(query: ArtifactQuery, tenant: str) -> list[Any]:
    record = ArtifactRecord
    where: list[Any] = [col(record.tenant) == tenant]
    if query.plan is not None:
        where.append(col(record.plan) == query.plan)
    if query.run_id is not None:
        where.append(col(record.run_id) == query.run_id)
    if query.task_id is not None:
        where.append(col(record.task_id) == query.task_id)
    if query.kind is not None:
        where.append(col(record.kind) == query.kind)
    for key, value in sorted(query.labels.items()):
        where.append(col(record.labels)[key].as_string() == value)
    if query.name_prefix:
        where.append(col(record.name).startswith(query.name_prefix, autoescape=True))
    if query.since is not None:
        where.append(col(record.created) >= query.since)
    if query.after is not None:
        where.append(
            sa.tuple_(col(record.created), col(record.id))
            < sa.tuple_(
                sa.literal(query.after.created, UTCDateTime()),
                sa.literal(query.after.id, sa.Uuid()),
            )
        )
    return where


def page_statement(query: ArtifactQuery, tenant: str) -> SelectOfScalar[ArtifactRecord]:
    """The SELECT of one page plus one row (which says whether another page follows)."""
    return (
        select(ArtifactRecord)
        .where(*_conditions(query, tenant))
        .order_by(col(ArtifactRecord.created).desc(), col(ArtifactRecord.id).desc())
        .limit(query.limit + 1)
    )


def make_page(rows: Sequence[ArtifactRecord], limit: int) -> ArtifactPage:
    """The page of the rows :func:`page_statement` returned."""
    shown = list(rows[:limit])
    more = len(rows) > limit
    return ArtifactPage(shown, Cursor(shown[-1].created, shown[-1].id) if more else None)
