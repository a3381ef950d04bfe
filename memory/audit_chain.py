"""The audit journal's hash chain, pure: the canonical bytes of an entry, its hash, and
:func:`verify_chain`, which finds the first entry that breaks a tenant's chain and says why.

Each entry's ``hash`` is the sha256 of its canonical bytes, which include ``prev_hash``, the hash
of the entry before it (``GENESIS_HASH`` for the first). Editing any field of an entry changes its
hash; removing, inserting or reordering entries breaks the sequence numbers or the links. What a
chain alone cannot show is a cut at its end, or a journal rewritten from some point on with fresh
hashes: compare the head that ``plan2flow audit verify`` prints with one kept elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of a tenant's first entry."""

ProblemKind = Literal["edited", "removed", "inserted", "reordered", "unlinked", "foreign"]


class Chained(Protocol):
    """What the chain reads of an entry: the ``AuditEntry`` row or a :class:`ChainEntry`."""

    @property
    def tenant(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def time(self) -> dt.datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class ChainEntry:
    """An entry outside the database: read back from an export, or built by a test."""

    tenant: str
    seq: int
    time: dt.datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ChainEntry:
        """The entry of one exported record (the fields of :func:`entry_record`)."""
        detail = record["detail"]
        return cls(
            tenant=str(record["tenant"]),
            seq=int(record["seq"]),
            time=dt.datetime.fromisoformat(str(record["time"])),
            actor=str(record["actor"]),
            action=str(record["action"]),
            subject=str(record["subject"]),
            detail=json.loads(detail) if isinstance(detail, str) else dict(detail),
            prev_hash=str(record["prev_hash"]),
            hash=str(record["hash"]),
        )


def format_time(moment: dt.datetime) -> str:
    """UTC, ISO 8601, always with microseconds; a naive time is taken as UTC (SQLite returns
    the UTC it was given without its offset).

    >>> format_time(dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    '2026-03-01T08:30:00.000000Z'
    """
    utc = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain_json(value: Any) -> Any:
    """``value`` as the JSON it will read back as from either database: tuples become lists,
    non-finite numbers are refused (ValueError), ``-0.0`` becomes ``0.0`` and an integral float
    of 1e16 or more becomes an int (PostgreSQL's ``jsonb`` stores numbers as decimals and gives
    those back that way), so an entry hashes the same before and after storage.

    >>> plain_json({"n": (1, -0.0, 1e16, 0.5)})
    {'n': [1, 0.0, 10000000000000000, 0.5]}
    """
    return _plain(json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        if value == 0:
            return 0.0
        if value.is_integer() and abs(value) >= 1e16:
            return int(value)
    return value


def canonical_bytes(entry: Chained) -> bytes:
    """What ``hash`` covers: compact JSON with sorted keys, UTF-8, of every field but the hash.

    >>> entry = ChainEntry("acme", 1, dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "ada", "compile",
    ...                    "etl", {"b": 1, "a": [2]}, GENESIS_HASH, "")
    >>> canonical_bytes(entry)[:59]
    b'{"action":"compile","actor":"ada","detail":{"a":[2],"b":1},'
    """
    fields = {
        "tenant": entry.tenant,
        "seq": entry.seq,
        "time": format_time(entry.time),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "detail": _plain(dict(entry.detail)),
        "prev_hash": entry.prev_hash,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def entry_hash(entry: Chained) -> str:
    """The sha256 (hex) of :func:`canonical_bytes`."""
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


def entry_record(entry: Chained) -> dict[str, Any]:
    """The entry as a JSON object (what exports hold); :meth:`ChainEntry.from_dict` reads it."""
    return {
        "tenant": entry.tenant,
        "seq": entry.seq,
        "time": format_time(entry.time),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "detail": dict(entry.detail),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@dataclass(frozen=True)
class ChainProblem:
    """The first entry that breaks the chain (``seq``), what kind of break it is, and why."""

    seq: int
    kind: ProblemKind
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class ChainWalk:
    """What :func:`walk_chain` found: how many entries verified, the last one's seq and hash (the
    head), and the first problem, if any."""

    tenant: str | None
    count: int
    last_seq: int
    head: str
    problem: ChainProblem | None


@dataclass
class _Position:
    tenant: str | None
    last_seq: int = 0
    head: str = GENESIS_HASH
    before_head: str = GENESIS_HASH


def walk_chain(entries: Iterable[Chained], tenant: str | None = None) -> ChainWalk:
    """Check `entries` (one tenant's, in ``seq`` order) from the first; stop at the first
    problem. `tenant` defaults to the first entry's."""
    at = _Position(tenant)
    count = 0
    problem = None
    for entry in entries:
        at.tenant = at.tenant or entry.tenant
        problem = _problem(entry, at)
        if problem is not None:
            break
        at.before_head, at.head, at.last_seq = at.head, entry.hash, entry.seq
        count += 1
    return ChainWalk(at.tenant, count, at.last_seq, at.head, problem)


def verify_chain(entries: Iterable[Chained], tenant: str | None = None) -> ChainProblem | None:
    """The first problem of `entries` (one tenant's, in ``seq`` order), or None when every
    entry is intact and follows the one before it.

    >>> first = ChainEntry("acme", 1, dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "ada", "compile",
    ...                    "etl", {}, GENESIS_HASH, "")
    >>> first = ChainEntry(**{**first.__dict__, "hash": entry_hash(first)})
    >>> verify_chain([first]) is None
    True
    >>> edited = ChainEntry(**{**first.__dict__, "actor": "mallory"})
    >>> print(verify_chain([edited]))
    entry 1 was edited: its hash does not match its contents
    """
    return walk_chain(entries, tenant).problem


def _problem(entry: Chained, at: _Position) -> ChainProblem | None:
    expected = at.last_seq + 1
    seq = entry.seq
    if seq > expected:
        missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
        where = f"goes from {at.last_seq} to {seq}" if at.last_seq else f"starts at {seq}"
        return ChainProblem(expected, "removed", f"{missing} removed: the journal {where}")
    if seq < expected:
        return ChainProblem(
            seq, "reordered", f"entry {seq} comes again after entry {at.last_seq} (reordered)"
        )
    if entry.tenant != at.tenant:
        return ChainProblem(
            seq,
            "foreign",
            f"entry {seq} belongs to tenant {entry.tenant!r}, not {at.tenant!r} (moved)",
        )
    intact = entry_hash(entry) == entry.hash
    if entry.prev_hash != at.head:
        return _unlinked(entry, at, intact)
    if not intact:
        return ChainProblem(
            seq, "edited", f"entry {seq} was edited: its hash does not match its contents"
        )
    return None


def _unlinked(entry: Chained, at: _Position, intact: bool) -> ChainProblem:
    seq = entry.seq
    if seq == 1:
        return ChainProblem(
            1, "unlinked", "entry 1 does not start the chain: its prev_hash is not the genesis hash"
        )
    if entry.prev_hash == at.before_head:
        before = f"entry {seq - 2}" if seq > 2 else "the start of the chain"
        return ChainProblem(
            seq - 1,
            "inserted",
            f"entry {seq - 1} was inserted: entry {seq} links to {before}, not to it",
        )
    if not intact and entry.hash == entry_hash(_relinked(entry, at.head)):
        return ChainProblem(
            seq, "edited", f"entry {seq} was edited: its prev_hash is not entry {seq - 1}'s hash"
        )
    if not intact:
        return ChainProblem(
            seq,
            "reordered",
            f"entry {seq} was moved or renumbered: it does not follow entry {seq - 1} and its "
            "hash does not match its contents (entries reordered, or one removed before it)",
        )
    return ChainProblem(
        seq,
        "unlinked",
        f"entry {seq} does not follow entry {seq - 1}: its prev_hash is not that entry's hash "
        f"(entry {seq - 1} rewritten, or entries removed or inserted before {seq})",
    )


def _relinked(entry: Chained, prev_hash: str) -> ChainEntry:
    return ChainEntry(
        entry.tenant,
        entry.seq,
        entry.time,
        entry.actor,
        entry.action,
        entry.subject,
        entry.detail,
        prev_hash,
        entry.hash,
    )
